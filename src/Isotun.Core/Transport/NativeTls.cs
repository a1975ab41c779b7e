using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Isotun.Transport;

/// <summary>
/// What a TLS connection needs from OpenSSL that <see cref="SslStream"/> has no API for, set on its <c>SSL*</c>:
/// <list type="bullet">
/// <item><see cref="ReleaseBuffers"/>: OpenSSL keeps a read and a write buffer of about 17 KiB each for a connection's
/// whole life unless <c>SSL_MODE_RELEASE_BUFFERS</c> is set, and .NET never sets it: every idle VPN session held some
/// 34 KiB of native memory for nothing (10,000 idle sessions: about a third of the server's memory). With the mode, an
/// idle connection holds no record buffer, and a busy one takes one per record from malloc's free lists.</item>
/// <item><see cref="Resumed"/>: whether the handshake resumed a session (<c>SSL_session_reused</c>).</item>
/// <item><see cref="PrimeTicketKeyAsync"/>: the key that seals session tickets. OpenSSL makes a random one for each
/// <c>SSL_CTX</c>, so no ticket outlives the process; a kept one (a file, or a cluster's key) lets clients resume
/// across a restart, and on any server that has the same key.</item>
/// </list>
/// Hand-written, because there is no API: SslStream's <c>SSL*</c> is reached by private reflection (its
/// <c>_securityContext</c>, a SafeHandle around the <c>SSL*</c> on Linux), and libssl 3 is called directly. Each call is
/// made right after a handshake, before the stream is read or written again (an <c>SSL*</c> is not to be used from two
/// threads at once). Guarded: on a runtime laid out otherwise, or without libssl 3, nothing is done and each method
/// says so.
/// </summary>
public static partial class NativeTls
{
    /// <summary>A ticket key's length: a 16-byte name, a 32-byte HMAC secret and a 32-byte AES key, in that order.</summary>
    public const int TicketKeyLength = 80;

    private const int SslCtrlMode = 33;             // SSL_CTRL_MODE: SSL_set_mode is SSL_ctrl(ssl, 33, mode, NULL)
    private const long SslModeReleaseBuffers = 0x10; // SSL_MODE_RELEASE_BUFFERS
    private const int SslCtrlGetTicketKeys = 58;    // SSL_CTRL_GET_TLSEXT_TICKET_KEYS
    private const int SslCtrlSetTicketKeys = 59;    // SSL_CTRL_SET_TLSEXT_TICKET_KEYS

    private static readonly FieldInfo? s_context = typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic) is { } f
        && typeof(SafeHandle).IsAssignableFrom(f.FieldType) && f.FieldType.Name == "SafeDeleteSslContext" ? f : null;

    // SslStream's read buffer (a struct, SslBuffer): how much it holds, and the method that gives its array back.
    private static readonly FieldInfo? s_readBuffer = typeof(SslStream).GetField("_buffer", BindingFlags.Instance | BindingFlags.NonPublic);
    private static readonly PropertyInfo? s_readBufferHolds = s_readBuffer?.FieldType.GetProperty("ActiveLength", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
    private static readonly MethodInfo? s_readBufferReturn = s_readBuffer?.FieldType.GetMethod("ReturnBuffer", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public, Type.EmptyTypes);

    /// <summary>
    /// For a stream that carries <paramref name="tls"/>'s records itself after the handshake: true when SslStream holds
    /// no bytes of the peer's in its read buffer, which is then given back to the pool (SslStream keeps its handshake's
    /// 8 KiB read buffer until a read of its own returns it, and no read of its own will come: kept, it was 8 KiB more
    /// per idle session). False when it holds bytes, or when this runtime's SslStream is laid out otherwise.
    /// </summary>
    internal static bool GiveUpReadBuffer(SslStream tls)
    {
        if (s_readBuffer is null || s_readBufferHolds is null || s_readBufferReturn is null || !s_readBuffer.FieldType.IsValueType) return false;
        object buffer = s_readBuffer.GetValue(tls)!; // a boxed copy of the struct: changed, then set back
        if (s_readBufferHolds.GetValue(buffer) is not int held || held != 0) return false;
        s_readBufferReturn.Invoke(buffer, null);
        s_readBuffer.SetValue(tls, buffer);
        return true;
    }

    private static volatile bool s_unavailable = s_context is null || !OperatingSystem.IsLinux();

    /// <summary>Whether this runtime's SslStream and libssl 3 allow these calls, as far as known so far.</summary>
    public static bool Available => !s_unavailable;

    /// <summary>Sets <c>SSL_MODE_RELEASE_BUFFERS</c> on <paramref name="tls"/>, whose handshake is done; true when it was set.</summary>
    public static bool ReleaseBuffers(SslStream tls) =>
        With(tls, false, static ssl => (SSL_ctrl(ssl, SslCtrlMode, SslModeReleaseBuffers, 0) & SslModeReleaseBuffers) != 0);

    /// <summary>Whether <paramref name="tls"/>'s handshake resumed a session; null when that cannot be known here.</summary>
    public static bool? Resumed(SslStream tls) => With<bool?>(tls, null, static ssl => SSL_session_reused(ssl) == 1);

    /// <summary>
    /// Makes <paramref name="key"/> the ticket key of every later handshake under <paramref name="options"/>.
    /// The runtime keeps one <c>SSL_CTX</c> per server certificate context and makes it at the first handshake, so a
    /// handshake with ourselves, over a socket pair in this process, makes it now; the key is then set on it, before
    /// any client is served, so even the first client after a restart can resume. The options must carry a
    /// <see cref="SslServerAuthenticationOptions.ServerCertificateContext"/>; false when the key could not be set.
    /// A session resumes only under the same key and <paramref name="scope"/> (a gateway's route name: routes with TLS
    /// contexts of their own do not resume each other's sessions).
    /// </summary>
    public static async Task<bool> PrimeTicketKeyAsync(SslServerAuthenticationOptions options, ReadOnlyMemory<byte> key, string scope = "", CancellationToken cancel = default)
    {
        if (key.Length != TicketKeyLength) throw new ArgumentException($"a ticket key has {TicketKeyLength} bytes", nameof(key));
        if (options.ServerCertificateContext is null) throw new ArgumentException("the options need a ServerCertificateContext (the runtime keeps its SSL_CTX there)", nameof(options));
        if (s_unavailable) return false;
        // An abstract Unix socket: no file, no network, and present in any network namespace.
        var endpoint = new UnixDomainSocketEndPoint("\0isotun-ticket-key-" + Guid.NewGuid().ToString("N"));
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(endpoint);
        listener.Listen(1);
        using var dialer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        await dialer.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
        using var accepted = await listener.AcceptAsync(timeout.Token).ConfigureAwait(false);
        await using var server = new SslStream(new NetworkStream(accepted), leaveInnerStreamOpen: false);
        await using var client = new SslStream(new NetworkStream(dialer), leaveInnerStreamOpen: false, (_, _, _, _) => true);
        await Task.WhenAll(
            server.AuthenticateAsServerAsync(options, timeout.Token),
            client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "isotun-ticket-key", EnabledSslProtocols = options.EnabledSslProtocols }, timeout.Token)).ConfigureAwait(false);
        return With(server, false, ssl => SetTicketKey(ssl, key.Span, scope));
    }

    /// <summary>Sets <paramref name="key"/> on the <c>SSL_CTX</c> of <paramref name="ssl"/> (done before anyone else
    /// uses that context); true when the context holds it.</summary>
    private static unsafe bool SetTicketKey(nint ssl, ReadOnlySpan<byte> key, string scope)
    {
        var ctx = SSL_get_SSL_CTX(ssl);
        if (ctx == 0) return false;
        // A resumed session must carry the server's session ID context, and the runtime's is not the same in two
        // processes: without this, a restarted server with the same key made a full handshake for a client that
        // brought its predecessor's ticket. Servers of one key and scope share one context, derived from both (a hash;
        // the context never leaves the server).
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(key);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(scope));
        Span<byte> context = stackalloc byte[SHA256.HashSizeInBytes];
        hash.GetHashAndReset(context);
        fixed (byte* k = key)
        fixed (byte* c = context)
        {
            if (SSL_CTX_ctrl(ctx, SslCtrlSetTicketKeys, key.Length, (nint)k) != 1
                || SSL_CTX_set_session_id_context(ctx, (nint)c, (uint)context.Length) != 1) return false;
        }
        Span<byte> held = stackalloc byte[TicketKeyLength];
        try
        {
            fixed (byte* h = held)
                return SSL_CTX_ctrl(ctx, SslCtrlGetTicketKeys, held.Length, (nint)h) == 1 && held.SequenceEqual(key);
        }
        finally
        {
            held.Clear();
        }
    }

    /// <summary>
    /// <paramref name="call"/> on the <c>SSL*</c> of <paramref name="tls"/>, its handle held meanwhile; or
    /// <paramref name="unknown"/> when the <c>SSL*</c> cannot be reached here (another runtime's layout, no libssl 3,
    /// or the stream closed).
    /// </summary>
    private static T With<T>(SslStream tls, T unknown, Func<nint, T> call)
    {
        if (Handle(tls) is not { } ssl) return unknown;
        bool added = false;
        try
        {
            ssl.DangerousAddRef(ref added);
            return added ? call(ssl.DangerousGetHandle()) : unknown;
        }
        catch (ObjectDisposedException)
        {
            return unknown; // closed meanwhile
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return unknown;
        }
        finally
        {
            if (added) ssl.DangerousRelease();
        }
    }

    /// <summary>
    /// The <c>SSL*</c> of <paramref name="tls"/> as its SafeHandle (the caller holds a reference on it around each
    /// call), or null when it cannot be reached here: another runtime's layout, no libssl 3, or the stream closed.
    /// </summary>
    internal static SafeHandle? Handle(SslStream tls)
    {
        if (s_unavailable || s_context!.GetValue(tls) is not SafeHandle ssl || ssl.IsInvalid) return null;
        try
        {
            ERR_clear_error(); // loads libcrypto: a missing library shows here, not in the middle of a read
            return ssl;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return null;
        }
    }

    // The record layer's calls (TlsRecordStream). SSL_read and SSL_write may run OpenSSL callbacks into the runtime
    // (a client's new-session callback), so none of them suppresses the GC transition.
    [LibraryImport("libssl.so.3")]
    internal static unsafe partial int SSL_read(nint ssl, byte* buffer, int length);

    [LibraryImport("libssl.so.3")]
    internal static unsafe partial int SSL_write(nint ssl, byte* buffer, int length);

    [LibraryImport("libssl.so.3")]
    internal static partial int SSL_pending(nint ssl);

    internal const int SslReceivedShutdown = 2; // SSL_RECEIVED_SHUTDOWN: the peer's close_notify came

    [LibraryImport("libssl.so.3")]
    internal static partial int SSL_get_shutdown(nint ssl);

    [LibraryImport("libcrypto.so.3")]
    internal static partial nuint ERR_peek_error();

    [LibraryImport("libssl.so.3")]
    internal static partial int SSL_shutdown(nint ssl);

    [LibraryImport("libssl.so.3")]
    internal static partial void SSL_set_quiet_shutdown(nint ssl, int mode);

    private const int SslCtrlGetReadAhead = 40; // SSL_CTRL_GET_READ_AHEAD: SSL_get_read_ahead is SSL_ctrl(ssl, 40, 0, NULL)

    /// <summary>Whether OpenSSL reads ahead on <paramref name="ssl"/> (pulls more than the record it is on out of its read BIO).</summary>
    internal static bool ReadsAhead(nint ssl) => SSL_ctrl(ssl, SslCtrlGetReadAhead, 0, 0) != 0;

    [LibraryImport("libssl.so.3")]
    internal static partial nint SSL_get_rbio(nint ssl);

    [LibraryImport("libssl.so.3")]
    internal static partial nint SSL_get_wbio(nint ssl);

    [LibraryImport("libcrypto.so.3")]
    internal static unsafe partial int BIO_read(nint bio, byte* buffer, int length);

    [LibraryImport("libcrypto.so.3")]
    internal static unsafe partial int BIO_write(nint bio, byte* buffer, int length);

    [LibraryImport("libcrypto.so.3")]
    internal static partial nuint BIO_ctrl_pending(nint bio);

    [LibraryImport("libcrypto.so.3")]
    internal static partial void ERR_clear_error();

    [LibraryImport("libcrypto.so.3")]
    internal static partial nuint ERR_get_error();

    [LibraryImport("libcrypto.so.3")]
    internal static unsafe partial void ERR_error_string_n(nuint error, byte* buffer, nuint length);

    /// <summary>OpenSSL's first queued error as text (the queue is then cleared), or null when there is none.</summary>
    internal static unsafe string? TakeError()
    {
        nuint e = ERR_get_error();
        ERR_clear_error();
        if (e == 0) return null;
        byte* text = stackalloc byte[256];
        ERR_error_string_n(e, text, 256);
        return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)text);
    }

    [LibraryImport("libssl.so.3")]
    private static partial long SSL_ctrl(nint ssl, int cmd, long larg, nint parg);

    [LibraryImport("libssl.so.3")]
    private static partial long SSL_CTX_ctrl(nint ctx, int cmd, long larg, nint parg);

    [LibraryImport("libssl.so.3")]
    private static partial nint SSL_get_SSL_CTX(nint ssl);

    [LibraryImport("libssl.so.3")]
    private static partial int SSL_session_reused(nint ssl);

    [LibraryImport("libssl.so.3")]
    private static partial int SSL_CTX_set_session_id_context(nint ctx, nint context, uint length);
}
