using System.Net;

namespace Isotun.Transport.Listening;

/// <summary>Decides at accept time, before a byte is read, whether a connection from a source may go on.</summary>
public interface IConnectionAdmission
{
    /// <summary>Null when admitted (then <see cref="Release"/> follows when the connection ends), else why not.</summary>
    AdmissionRefusal? Admit(IPAddress source);

    void Release(IPAddress source);
}
