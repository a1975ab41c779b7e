using System.Net;
using Isotun.Logs;
using Isotun.Metrics;
using Isotun.Transport.Listening;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// The server's listeners report here: refusals and accept failures are counted (<c>isotun_listener_refused_total</c>,
/// <c>isotun_listener_accept_errors_total</c>, by listener) and logged, at most a few lines per reason and period.
/// </summary>
internal sealed class ServerListenerEvents(ListenerName listener, IsotunMetrics metrics, ILogger log) : IListenerEvents
{
    private readonly LogThrottle _throttle = new();

    public void Refused(IPEndPoint remote, AdmissionRefusal reason)
    {
        metrics.ListenerRefused(listener, reason);
        if (_throttle.Allow(reason.ToLabel(), out long suppressed))
            ServerLog.ListenerRefused(log, listener.ToLabel(), remote.ToString(), reason.ToLabel(), suppressed);
    }

    public void AcceptFailed(AcceptFailure error, TimeSpan backoff)
    {
        metrics.AcceptError(listener, error);
        if (_throttle.Allow("accept-" + error.ToLabel(), out long suppressed))
            ServerLog.AcceptFailed(log, listener.ToLabel(), error.ToLabel(), (int)backoff.TotalMilliseconds, suppressed);
    }

    public void HandlerFailed(long id, Exception error)
    {
        // A bug in one connection must not take the server down.
        metrics.Closed(CloseReason.Error);
        log.LogError(error, "conn={Conn} failed", id);
    }
}
