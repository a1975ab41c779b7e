using System.Net;

namespace Isotun.Transport.Listening;

/// <summary>What a <see cref="ConnectionListener"/> reports, for its owner to count and log (with throttling).</summary>
public interface IListenerEvents
{
    /// <summary>A connection refused at accept by the admission; it was reset.</summary>
    void Refused(IPEndPoint remote, AdmissionRefusal reason);

    /// <summary>
    /// Accepting failed for a reason that is not one connection's (e.g. <see cref="AcceptFailure.Emfile"/>, the process is
    /// out of file descriptors); the listener waits <paramref name="backoff"/> and goes on.
    /// </summary>
    void AcceptFailed(AcceptFailure error, TimeSpan backoff);

    /// <summary>A handler threw something other than the I/O errors a peer can cause: a bug, but only this connection's.</summary>
    void HandlerFailed(long id, Exception error);
}
