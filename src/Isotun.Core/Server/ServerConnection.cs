using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Metrics;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Cookies;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Ip;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// One accepted TCP connection: TLS handshake, then HTTP requests (XML auth, CONNECT), then, after a
/// successful CONNECT, the tunnel. Every phase is bounded in time and size, and every way out is counted.
/// The phases are partial files: this one (TLS and the request loop with its deadlines), <c>.Auth</c> (logins),
/// <c>.Connect</c> (CONNECT, queue joins, the tunnel's end) and <c>.Replies</c> (writes under their deadline).
/// </summary>
internal sealed partial class ServerConnection(IConnectionHost server, long id, ILogger log)
{
    private const int MaxHead = HttpHeadParser.DefaultMaxHeadBytes;
    private static readonly byte[] s_peek = new byte[1]; // shared: what a peek copies into it is never read
    private PeerInfo _peer = new(null, null, null);
    private WriteCoalescingStream? _under; // under this process's TLS; null when a gateway terminated it

    /// <summary>The sampler of this connection's TLS record work for <paramref name="tenant"/>, when this process does the TLS.</summary>
    private CryptoSampler? CryptoFor(TenantRuntime tenant) => _under is { } under ? new CryptoSampler(tenant.Traffic.Crypto, under) : null;
    private Func<bool>? _morePending;

    /// <summary>
    /// A connection from the TLS listener: handshake here, then the HTTP phase. <paramref name="remote"/> overrides the
    /// socket's peer address (the client's, from a trusted gateway's PROXY header on a passthrough route).
    /// </summary>
    public async Task RunTlsAsync(Socket socket, CancellationToken stopping, IPEndPoint? remote = null)
    {
        var metrics = server.Metrics;
        SocketTuning.Apply(socket);
        await using var net = new SocketStream(socket);
        // Records are gathered under the TLS layer until each flush: bursts of small frames share a send(). The
        // handshake is read record by record, so that a TlsRecordStream can carry the connection after it.
        _under = new WriteCoalescingStream(net, recordReads: true);
        await using var tls = new SslStream(_under, leaveInnerStreamOpen: false);
        var limits = server.Config.Limits;

        var sw = Stopwatch.StartNew();
        using (var hsCts = CancellationTokenSource.CreateLinkedTokenSource(stopping))
        {
            hsCts.CancelAfter(limits.HandshakeTimeout);
            try
            {
                // A peer that closes without a byte is a port probe (a load balancer's or the gateway's health check)
                // or a scanner, not a failed handshake: it is counted apart and logged at Debug only, so probes every
                // few seconds neither fill the log nor make the handshake failure ratio look like an attack.
                if (await socket.ReceiveAsync(s_peek, SocketFlags.Peek, hsCts.Token).ConfigureAwait(false) == 0)
                {
                    server.Metrics.Closed(CloseReason.NoData);
                    ServerLog.ConnectionClosed(log, LogLevel.Debug, id, "closed by the peer before it sent a byte");
                    return;
                }
                await tls.AuthenticateAsServerAsync(server.TlsOptions, hsCts.Token).ConfigureAwait(false);
                NativeTls.ReleaseBuffers(tls); // an idle session then holds no TLS record buffers
                // OpenSSL says whether the session was resumed; where it cannot be asked, a first flight shorter than
                // our certificate cannot have carried it.
                bool resumed = NativeTls.Resumed(tls) ?? _under.FirstFlightBytes < server.ServerCertificate.RawData.Length;
                metrics.Handshake(HandshakeResult.Ok, sw.Elapsed, resumed ? HandshakeKind.Resumed : HandshakeKind.Full);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                metrics.Handshake(HandshakeResult.Timeout, sw.Elapsed);
                Close(CloseReason.HandshakeTimeout, "TLS handshake timed out");
                return;
            }
            // CryptographicException: a client certificate the runtime's own look at it cannot parse (OpenSSL took it).
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException or System.Security.Cryptography.CryptographicException)
            {
                metrics.Handshake(HandshakeResult.Failed, sw.Elapsed);
                Close(CloseReason.HandshakeFailed, "TLS handshake failed: " + e.Message);
                return;
            }
        }
        ClientCertificateInfo? cert = null;
        if (tls.RemoteCertificate is { } rc) cert = Authenticator.Inspect(rc as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(rc.GetRawCertData()));
        _morePending = () => SocketTuning.BytesWaiting(socket);
        var peer = new PeerInfo(remote ?? socket.RemoteEndPoint as IPEndPoint, string.IsNullOrEmpty(tls.TargetHostName) ? null : tls.TargetHostName, cert);
        // After a TLS 1.3 handshake the records are read and written on OpenSSL's connection directly; else by SslStream.
        await using var records = TlsRecordStream.TryTake(tls, _under);
        await RunAsync(records ?? (Stream)tls, peer, stopping).ConfigureAwait(false);
    }

    /// <summary>
    /// The HTTP phase (auth, CONNECT) and then the tunnel, over a stream whose TLS is already done: by the
    /// TLS listener, or by an edge gateway that terminated TLS and described the peer in PROXY v2.
    /// </summary>
    public async Task RunAsync(Stream tls, PeerInfo peer, CancellationToken stopping)
    {
        try
        {
            await RunHttpAsync(tls, peer, stopping).ConfigureAwait(false);
        }
        catch (WriteTimeoutException)
        {
            Close(CloseReason.WriteTimeout, $"peer did not take a reply within {server.Config.Limits.WriteTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary>
    /// Deadlines of the HTTP phase, each closing only this connection, counted: the auth timeout from the connection
    /// (or the login) on, which also bounds the idle time between requests; the request timeout from a request's first
    /// byte to the end of its head (a head sent a byte at a time is cut off); a minimum data rate for the body; and a
    /// write timeout for every reply (a peer that sends but never reads is not held for ever).
    /// </summary>
    private async Task RunHttpAsync(Stream tls, PeerInfo peer, CancellationToken stopping)
    {
        _peer = peer;
        var limits = server.Config.Limits;
        using var reader = new ConnectionReader(tls);
        // The auth timeout runs from the connection to a login (as ocserv's auth-timeout): a peer that keeps
        // sending requests without logging in is cut off like a silent one. A login starts it again for CONNECT.
        long deadline = Environment.TickCount64 + (long)limits.AuthTimeout.TotalMilliseconds;
        while (!stopping.IsCancellationRequested)
        {
            using var reqCts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            reqCts.CancelAfter(TimeSpan.FromMilliseconds(Math.Max(0, deadline - Environment.TickCount64)));
            HttpRequestHead? head;
            byte[] body = [];
            var phase = CloseReason.AuthTimeout;
            try
            {
                // Idle until the next request's first byte: only the auth timeout applies.
                if (!await reader.WaitForDataAsync(reqCts.Token).ConfigureAwait(false)) { Close(CloseReason.PeerClosed, "peer closed"); return; }
                phase = CloseReason.RequestTimeout;
                reqCts.CancelAfter(Min(deadline - Environment.TickCount64, limits.RequestTimeout));
                (var result, head) = await reader.ReadRequestHeadAsync(MaxHead, reqCts.Token).ConfigureAwait(false);
                if (head is null)
                {
                    if (result == HttpParseResult.NeedMore) { Close(CloseReason.PeerClosed, "peer closed"); return; }
                    await RefuseAsync(tls, result == HttpParseResult.TooLarge ? 431 : 400, "Bad Request", $"bad HTTP request: {result}", stopping).ConfigureAwait(false);
                    return;
                }
                long length = head.Headers.ContentLength ?? 0;
                if (length > AuthXml.MaxBodyBytes)
                {
                    await RefuseAsync(tls, 413, "Payload Too Large", $"body of {length} bytes is over the limit", stopping).ConfigureAwait(false);
                    return;
                }
                if (length > 0)
                {
                    phase = CloseReason.SlowBody;
                    reqCts.CancelAfter(Min(deadline - Environment.TickCount64, limits.BodyTimeout(length)));
                    var b = await reader.ReadBodyAsync((int)length, reqCts.Token).ConfigureAwait(false);
                    if (b is null) { Close(CloseReason.PeerClosed, "peer closed in the body"); return; }
                    body = b;
                }
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                bool authExpired = Environment.TickCount64 >= deadline;
                Close(authExpired ? CloseReason.AuthTimeout : phase, authExpired ? "request not received in time"
                    : phase == CloseReason.RequestTimeout ? $"request head not complete within {limits.RequestTimeout.TotalSeconds:0} s of its first byte"
                    : $"request body slower than {limits.MinBodyRate} bytes/s");
                return;
            }
            catch (IOException)
            {
                Close(CloseReason.PeerClosed, "peer closed");
                return;
            }

            // Logins and CONNECTs may block (hashing, the state file): not on the epoll thread the read may have ended on.
            await IoThreads.LeaveAsync();
            if (head.Method == "CONNECT")
            {
                await ConnectAsync(tls, reader, head, stopping).ConfigureAwait(false);
                return;
            }
            if (head.Method == "POST")
            {
                var step = await AuthAsync(tls, head, body, stopping).ConfigureAwait(false);
                if (step == AuthStep.Close) return;
                if (step == AuthStep.LoggedIn)
                    deadline = Environment.TickCount64 + (long)limits.AuthTimeout.TotalMilliseconds;
                continue;
            }
            if (head.Method == "GET")
            {
                // Stock clients fall back to GET only when XML auth failed; point them at XML auth. A tenant picked by
                // the path or by its own server name is not shown the others' names, as for a POST.
                bool groups = Authenticator.PathTenant(head.Target).Length == 0 && server.Authenticator.TenantForServerName(_peer.ServerName) is null;
                await WriteXmlAsync(tls, 200, AuthXml.BuildAuthRequest(server.Authenticator.BuildForm(head.Target, "Please log in.", null, groups, null)), null, stopping).ConfigureAwait(false);
                continue;
            }
            await RefuseAsync(tls, 405, "Method Not Allowed", $"method {Sanitize(head.Method)} not allowed", stopping).ConfigureAwait(false);
            return;
        }
    }

    private void Close(CloseReason reason, string detail)
    {
        server.Metrics.Closed(reason);
        ServerLog.ConnectionClosed(log, Throttled("closed " + reason.ToLabel()), id, detail);
    }

    /// <summary>
    /// The level for a close or refusal line: Information for the first few of a kind per period, Debug for the rest of a
    /// flood (scanners, password guessing); the metrics count every one. The first line after a flood says how many.
    /// </summary>
    private LogLevel Throttled(string kind)
    {
        if (!server.LogThrottle.Allow(kind, out long suppressed)) return LogLevel.Debug;
        if (suppressed > 0) ServerLog.Suppressed(log, suppressed, kind);
        return LogLevel.Information;
    }

    /// <summary>The smaller of what is left of a deadline (ms, possibly negative) and a limit.</summary>
    private static TimeSpan Min(long remainingMs, TimeSpan limit) =>
        TimeSpan.FromMilliseconds(Math.Max(0, Math.Min(remainingMs, (long)limit.TotalMilliseconds)));

    private static string Sanitize(string s) => s.Length > 32 ? s[..32] : s;

    /// <summary>
    /// A login's user name as the log may show it: the name when <paramref name="tenant"/>'s password file lists it,
    /// else a marker. A name that is no user may be a password typed into the wrong field.
    /// </summary>
    private static string LoggedName(string? name, TenantRuntime? tenant) =>
        string.IsNullOrEmpty(name) ? "-" : tenant?.Passwords?.TryGetHash(name, out _) == true ? name : "(unknown user)";
}
