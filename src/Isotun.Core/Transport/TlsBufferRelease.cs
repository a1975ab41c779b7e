using System.Net.Security;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Isotun.Transport;

/// <summary>
/// Lets OpenSSL give a TLS connection's record buffers back while they are empty. OpenSSL keeps a read and a write
/// buffer of about 17 KiB each for a connection's whole life unless <c>SSL_MODE_RELEASE_BUFFERS</c> is set, and .NET
/// neither sets it nor offers a way to: every idle VPN session held some 34 KiB of native memory for nothing (10,000
/// idle sessions: about a third of the server's memory). With the mode, an idle connection holds no record buffer,
/// and a busy one allocates a buffer per record from malloc's free lists.
/// Hand-written, because there is no API: SslStream's <c>SSL*</c> is reached by private reflection (its
/// <c>_securityContext</c>, a SafeHandle around the <c>SSL*</c> on Linux), and the mode is set through libssl's
/// <c>SSL_ctrl</c>, right after the handshake, before the stream is read or written again (an <c>SSL*</c> is not to be
/// used from two threads at once). Guarded: on a runtime laid out otherwise, or without libssl 3, nothing is done and
/// the buffers stay as they were.
/// </summary>
public static partial class TlsBufferRelease
{
    private const int SslCtrlMode = 33;             // SSL_CTRL_MODE: SSL_set_mode is SSL_ctrl(ssl, 33, mode, NULL)
    private const long SslModeReleaseBuffers = 0x10; // SSL_MODE_RELEASE_BUFFERS

    private static readonly FieldInfo? s_context = typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic) is { } f
        && typeof(SafeHandle).IsAssignableFrom(f.FieldType) && f.FieldType.Name == "SafeDeleteSslContext" ? f : null;

    private static volatile bool s_unavailable = s_context is null || !OperatingSystem.IsLinux();

    /// <summary>Whether the mode can be set here (this runtime's SslStream and libssl 3), as far as known so far.</summary>
    public static bool Available => !s_unavailable;

    /// <summary>Sets the mode on <paramref name="tls"/>'s connection, whose handshake is done; true when it was set.</summary>
    public static bool Apply(SslStream tls)
    {
        if (s_unavailable || s_context!.GetValue(tls) is not SafeHandle ssl || ssl.IsInvalid) return false;
        bool added = false;
        try
        {
            ssl.DangerousAddRef(ref added);
            return (SSL_ctrl(ssl.DangerousGetHandle(), SslCtrlMode, SslModeReleaseBuffers, 0) & SslModeReleaseBuffers) != 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false; // closed meanwhile: nothing left to release
        }
        finally
        {
            if (added) ssl.DangerousRelease();
        }
    }

    [LibraryImport("libssl.so.3")]
    private static partial long SSL_ctrl(nint ssl, int cmd, long larg, nint parg);
}
