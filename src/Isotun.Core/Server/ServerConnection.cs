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
/// </summary>
public sealed class ServerConnection(VpnServer server, long id, ILogger log)
{
    private const int MaxHead = HttpHeadParser.DefaultMaxHeadBytes;
    private PeerInfo _peer = new(null, null, null);
    private Func<bool>? _morePending;

    /// <summary>
    /// A connection from the TLS listener: handshake here, then the HTTP phase. <paramref name="remote"/> overrides the
    /// socket's peer address (the client's, from a trusted gateway's PROXY header on a passthrough route).
    /// </summary>
    public async Task RunTlsAsync(Socket socket, CancellationToken stopping, IPEndPoint? remote = null)
    {
        var metrics = IsotunMetrics.Instance;
        SocketTuning.Apply(socket);
        await using var net = new NetworkStream(socket, ownsSocket: true);
        // Records are gathered under the TLS layer until each flush: bursts of small frames share a send().
        await using var tls = new SslStream(new WriteCoalescingStream(net), leaveInnerStreamOpen: false);
        var limits = server.Config.Limits;

        var sw = Stopwatch.StartNew();
        using (var hsCts = CancellationTokenSource.CreateLinkedTokenSource(stopping))
        {
            hsCts.CancelAfter(limits.HandshakeTimeout);
            try
            {
                await tls.AuthenticateAsServerAsync(server.TlsOptions, hsCts.Token).ConfigureAwait(false);
                metrics.Handshake("ok", sw.Elapsed);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                metrics.Handshake("timeout", sw.Elapsed);
                Close(CloseReason.HandshakeTimeout, "TLS handshake timed out");
                return;
            }
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException)
            {
                metrics.Handshake("failed", sw.Elapsed);
                Close(CloseReason.HandshakeFailed, "TLS handshake failed: " + e.Message);
                return;
            }
        }
        ClientCertificateInfo? cert = null;
        if (tls.RemoteCertificate is { } rc) cert = Authenticator.Inspect(rc as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(rc.GetRawCertData()));
        _morePending = () => SocketTuning.BytesWaiting(socket);
        var peer = new PeerInfo(remote ?? socket.RemoteEndPoint as IPEndPoint, string.IsNullOrEmpty(tls.TargetHostName) ? null : tls.TargetHostName, cert);
        await RunAsync(tls, peer, stopping).ConfigureAwait(false);
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
                // Stock clients fall back to GET only when XML auth failed; point them at XML auth.
                await WriteXmlAsync(tls, 200, AuthXml.BuildAuthRequest(server.Authenticator.BuildForm(head.Target, "Please log in.", null, Authenticator.PathTenant(head.Target).Length == 0, null)), null, stopping).ConfigureAwait(false);
                continue;
            }
            await RefuseAsync(tls, 405, "Method Not Allowed", $"method {Sanitize(head.Method)} not allowed", stopping).ConfigureAwait(false);
            return;
        }
    }

    private enum AuthStep { Continue, LoggedIn, Close }

    /// <summary>One auth request: go on reading requests, go on after a login (a cookie was sent), or close.</summary>
    private async Task<AuthStep> AuthAsync(Stream tls, HttpRequestHead head, byte[] body, CancellationToken ct)
    {
        var metrics = IsotunMetrics.Instance;
        var parsed = AuthXml.TryParseClientMessage(body, out var msg);
        if (parsed != AuthXmlResult.Ok || msg is null)
        {
            metrics.Auth("-", AuthOutcome.BadRequest);
            // The reply says "Connection: close", and so it is: a peer that sends such a body gets no second try here.
            await RefuseAsync(tls, 400, "Bad Request", $"auth body refused: {parsed}", ct).ConfigureAwait(false);
            return AuthStep.Close;
        }
        if (msg.Type == "logout")
        {
            // An XML logout ends the session its cookie names, and the cookie with it.
            if (SessionCookie.TryGet(head.Headers, out var cookie) && server.Cookies.TryOpen(cookie, out var loggedOut) == CookieOpenResult.Ok && loggedOut is not null)
            {
                if (server.Sessions.TryGet(loggedOut.SessionId) is { } session) server.Sessions.Kick(session, "logged out");
                else server.State.Revoke(loggedOut.SessionId, loggedOut.ExpiresAt);
            }
            await WriteXmlAsync(tls, 200, AuthXml.BuildComplete(), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }

        bool pathFixed = Authenticator.PathTenant(head.Target).Length > 0 || server.Authenticator.TenantForServerName(_peer.ServerName) is not null;
        string action = pathFixed ? head.Target.Split('?', 2)[0] : "/auth";
        // A source or user with too many failed logins is refused before any password is hashed.
        var pathTenant = Authenticator.PathTenant(head.Target);
        string? userKey = string.IsNullOrEmpty(msg.Username) ? null : LoginThrottle.UserKey(pathTenant.Length > 0 ? pathTenant : msg.GroupSelect, msg.Username);
        var source = _peer.Remote?.Address;
        if (server.Logins.Check(source, userKey) is var block and not LoginBlock.None)
        {
            metrics.Auth("-", AuthOutcome.Throttled);
            ServerLog.Login(log, Throttled("login throttled"), "-", id, PasswordSafe(msg.Username ?? "-"), block == LoginBlock.Source ? "throttled (source)" : "throttled (user)");
            var banned = server.Authenticator.BuildForm(action, "Login failed.", "too many failed logins; try again later", false, null);
            await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(banned with { Inputs = [] }), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }

        // Password hashing runs a bounded number at a time, so a storm of logins cannot starve the data path.
        AuthDecision decision;
        if (!await server.LoginGate.EnterAsync(ct).ConfigureAwait(false))
        {
            metrics.Auth("-", AuthOutcome.Busy);
            ServerLog.Login(log, Throttled("login busy"), "-", id, PasswordSafe(msg.Username ?? "-"), "busy");
            var busy = server.Authenticator.BuildForm(action, "Login failed.", "the server is busy; try again", false, null);
            await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(busy with { Inputs = [] }), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        try
        {
            decision = await Task.Run(() => server.Authenticator.Decide(msg, head.Target, _peer), ct).ConfigureAwait(false);
        }
        finally
        {
            server.LoginGate.Exit();
        }
        string tenantLabel = decision.Tenant?.Name ?? "-";
        if (!decision.ShowForm && !decision.Success)
        {
            var (sourceBanned, userBanned) = server.Logins.Failed(source, userKey);
            if (sourceBanned) LoginBanned(tenantLabel, "source", source?.ToString() ?? "-");
            if (userBanned) LoginBanned(tenantLabel, "user", PasswordSafe(msg.Username ?? "-"));
        }
        else if (decision.Success && userKey is not null)
        {
            server.Logins.Succeeded(userKey);
        }
        if (decision.ShowForm)
        {
            var form = server.Authenticator.BuildForm(action, decision.Message, null, !pathFixed, decision.Tenant?.Name);
            await WriteXmlAsync(tls, 200, AuthXml.BuildAuthRequest(form), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        string who = decision.User ?? msg.Username ?? "-";
        if (!decision.Success)
        {
            // A success is counted further down, once the session limits let it through.
            metrics.Auth(tenantLabel, decision.Outcome);
            ServerLog.Login(log, Throttled("login " + decision.Outcome.ToLabel()), tenantLabel, id, PasswordSafe(who), decision.Outcome.ToLabel());
            // A refusal lists no groups: it names nothing of any tenant (docs/isolation.md).
            var form = server.Authenticator.BuildForm(action, "Login failed.", decision.Message, false, null);
            await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(form with { Inputs = [] }), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        var tenant = decision.Tenant!;
        if (server.IsRevoked(tenant.Name, decision.User!))
        {
            metrics.Auth(tenantLabel, AuthOutcome.Revoked);
            ServerLog.Login(log, Throttled("login revoked"), tenantLabel, id, decision.User!, "revoked");
            var revoked = server.Authenticator.BuildForm(action, "Login failed.", "this user is revoked", false, null);
            await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(revoked with { Inputs = [] }), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        // The cookie carries a fingerprint of the credential: a removed user, a new password or a revoked certificate kills it.
        ulong credential = _peer.Certificate?.Raw is { } certificate ? Security.CredentialStamp.ForCertificate(certificate.SerialNumber)
            : tenant.Passwords?.TryGetHash(decision.User!, out var stored) == true ? Security.CredentialStamp.ForPassword(stored!) : 0;
        var ticket = server.Sessions.TryCreate(tenant, decision.User!, server.Config.Limits.MaxSessions, out var limit, credential);
        if (ticket is null)
        {
            metrics.Auth(tenantLabel, AuthOutcome.TooManySessions);
            var why = limit == SessionLimit.User ? "too many sessions for this user" : "too many sessions for this group";
            ServerLog.Login(log, Throttled("login too-many-sessions"), tenantLabel, id, decision.User!, why);
            var full = server.Authenticator.BuildForm(action, "Login failed.", why, false, null);
            await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(full with { Inputs = [] }), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        metrics.Auth(tenantLabel, AuthOutcome.Ok);
        ServerLog.Login(log, LogLevel.Information, tenantLabel, id, decision.User!, "ok");
        await WriteXmlAsync(tls, 200, AuthXml.BuildComplete(), SessionCookie.SetCookieValue(server.Cookies.Seal(ticket)), ct).ConfigureAwait(false);
        return AuthStep.LoggedIn;
    }

    private async Task ConnectAsync(Stream tls, ConnectionReader reader, HttpRequestHead head, CancellationToken stopping)
    {
        var metrics = IsotunMetrics.Instance;
        if (head.Target != "/CSCOSSLC/tunnel")
        {
            await RefuseAsync(tls, 404, "Not Found", "CONNECT to an unknown target", stopping).ConfigureAwait(false);
            return;
        }
        if (!SessionCookie.TryGet(head.Headers, out var cookie) || server.Cookies.TryOpen(cookie, out var ticket) != CookieOpenResult.Ok || ticket is null
            || server.State.IsRevoked(ticket.SessionId)
            || !server.Authenticator.Tenants.TryGetValue(ticket.Tenant, out var tenant)
            || !server.CredentialStillValid(tenant, ticket.User, ticket.Credential))
        {
            metrics.Auth("-", AuthOutcome.CookieRejected);
            await RefuseAsync(tls, 401, "Cookie is not acceptable", "cookie rejected", stopping).ConfigureAwait(false);
            return;
        }

        // Isotun peers may ask for extensions; stock peers never send the header and get plain CSTP.
        var offered = IsotunExtensions.Parse(head.Headers.Get(IsotunExtensions.Header));
        // USO goes with GSO: a tenant TUN without USO cuts the peer's UDP super-packets before writing them.
        var accepted = offered & (IsotunExtension.Batch
            | (tenant.Tun?.Offload == true ? IsotunExtension.Gso | IsotunExtension.Uso : IsotunExtension.None)
            | (tenant.Config.Queues > 1 ? IsotunExtension.Queues : IsotunExtension.None));
        if (!accepted.HasFlag(IsotunExtension.Gso)) accepted &= ~IsotunExtension.Uso;
        if (head.Headers.Get(IsotunExtensions.QueueHeader) is { } queueHeader)
        {
            await JoinQueueAsync(tls, reader, ticket, tenant, queueHeader, accepted, stopping).ConfigureAwait(false);
            return;
        }

        var session = server.Sessions.GetOrRestore(ticket, tenant);
        IPAddress.TryParse(head.Headers.Get("X-CSTP-Address") ?? "", out var asked);
        if (!tenant.TryLease(session, asked))
        {
            await WriteServiceUnavailableAsync(tls, "no address left in the pool", stopping).ConfigureAwait(false);
            Close(CloseReason.Error, $"tenant {tenant.Name}: pool exhausted");
            return;
        }
        var address = session.Address!;

        int mtu = tenant.Mtu;
        // The client's X-CSTP-MTU is openconnect's estimate for DTLS; over TLS the tunnel MTU is independent of
        // the path (TCP segments the stream), so the tenant's MTU is given, as ocserv does.

        // The first connection of a group says how many queues it wants; the tenant caps it. One means none.
        int queues = 1;
        if (accepted.HasFlag(IsotunExtension.Queues))
        {
            queues = Math.Min(IsotunExtensions.ParseCount(head.Headers.Get(IsotunExtensions.QueuesHeader), 1, IsotunExtensions.MaxQueues) ?? 1, tenant.Config.Queues);
            if (queues < 2) accepted &= ~IsotunExtension.Queues;
        }
        var tunnel = new TunnelConnection(id, session, tls, reader, mtu, accepted, log, stopping) { MorePending = _morePending };
        // A new primary starts a new group: the old one (a lost connection and its queues) is let go. Attached
        // before the reply, so the client's queues, which it opens as soon as it reads the reply, find it; frames
        // for it wait in its queue until its writer starts, after the reply.
        session.AttachPrimary(tunnel, queues);
        if (!await ReplyConnectedAsync(tls, BuildConnectedResponse(tenant, session, address, mtu, accepted, queues, 0), stopping).ConfigureAwait(false))
        {
            session.Detach(tunnel);
            return;
        }
        metrics.SessionUp(tenant.Name);
        var extensions = accepted == IsotunExtension.None ? "none" : IsotunExtensions.Format(accepted) + (queues > 1 ? $"={queues}" : "");
        session.Connected(_peer.Remote, ClientVersion(head), extensions);
        ServerLog.TunnelUp(log, tenant.Name, session.ShortId, id, session.User, address.ToString(), mtu, extensions, _peer.Remote?.ToString() ?? "-");

        var end = await tunnel.RunAsync().ConfigureAwait(false);

        metrics.SessionDown(tenant.Name);
        // The queues live and die with their primary: detaching it aborts them.
        session.Detach(tunnel);
        session.AddTotals(tunnel);
        Ended(session, tunnel, end);
        if (end == TunnelEnd.Shutdown) await GoingAwayAsync(tls).ConfigureAwait(false);
    }

    /// <summary>
    /// A further connection of a live session, joining its group as queue k (the `queues` extension). It
    /// carries data like the primary; it ends with the primary, and the session goes on without it if it ends first.
    /// </summary>
    private async Task JoinQueueAsync(Stream tls, ConnectionReader reader, SessionTicket ticket, TenantRuntime tenant, string queueHeader, IsotunExtension accepted, CancellationToken stopping)
    {
        var metrics = IsotunMetrics.Instance;
        int? index = IsotunExtensions.ParseCount(queueHeader, 1, IsotunExtensions.MaxQueues - 1);
        if (!accepted.HasFlag(IsotunExtension.Queues) || index is null)
        {
            await RefuseAsync(tls, 400, "Bad Request", accepted.HasFlag(IsotunExtension.Queues) ? "bad queue index" : "a queue without the queues extension", stopping).ConfigureAwait(false);
            return;
        }
        var session = server.Sessions.TryGet(ticket.SessionId);
        int queues = session?.QueueCount ?? 0;
        if (session?.Connection is null || session.Address is not { } address || index >= queues)
        {
            await RefuseAsync(tls, 409, "Conflict", session?.Connection is null ? "a queue for a session with no primary connection" : $"queue {index} of a group of {queues}", stopping).ConfigureAwait(false);
            return;
        }
        var tunnel = new TunnelConnection(id, session, tls, reader, tenant.Mtu, accepted, log, stopping, index.Value) { MorePending = _morePending };
        // The primary may have gone since the check: then this connection ends, as its group has.
        if (!session.TryAttachQueue(index.Value, tunnel))
        {
            await RefuseAsync(tls, 409, "Conflict", $"queue {index}: the primary connection ended meanwhile", stopping).ConfigureAwait(false);
            return;
        }
        if (!await ReplyConnectedAsync(tls, BuildConnectedResponse(tenant, session, address, tenant.Mtu, accepted, queues, index.Value), stopping).ConfigureAwait(false))
        {
            session.Detach(tunnel);
            return;
        }
        metrics.QueueUp(tenant.Name);
        ServerLog.QueueUp(log, tenant.Name, session.ShortId, id, index.Value, queues, _peer.Remote?.ToString() ?? "-");

        var end = await tunnel.RunAsync().ConfigureAwait(false);

        metrics.QueueDown(tenant.Name);
        session.Detach(tunnel);
        session.AddTotals(tunnel);
        Ended(session, tunnel, end);
        if (end == TunnelEnd.Shutdown) await GoingAwayAsync(tls).ConfigureAwait(false);
    }

    /// <summary>
    /// The server is stopping: the tunnel ends with a TLS close_notify, and no CSTP DISCONNECT or TERMINATE, since on
    /// those openconnect gives up. A closed connection is what makes openconnect (and isotun connect) reconnect with
    /// the cookie, to the next server process or, behind a gateway, to another node; the session and its cookie stay valid.
    /// </summary>
    private static async Task GoingAwayAsync(Stream tls)
    {
        if (tls is not SslStream ssl) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await ssl.ShutdownAsync().WaitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            // The peer may be gone already; the connection closes either way.
        }
    }

    /// <summary>Writes the 200 CONNECTED reply; false (and the close counted) when the peer is already gone.</summary>
    private async Task<bool> ReplyConnectedAsync(Stream tls, byte[] reply, CancellationToken ct)
    {
        try
        {
            await WithWriteDeadlineAsync(async t =>
            {
                await tls.WriteAsync(reply, t).ConfigureAwait(false);
                await tls.FlushAsync(t).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            return true;
        }
        catch (WriteTimeoutException)
        {
            Close(CloseReason.WriteTimeout, "peer did not take the CONNECT reply in time");
            return false;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            Close(CloseReason.PeerClosed, "peer gone before the CONNECT reply");
            return false;
        }
    }

    private void Ended(VpnSession session, TunnelConnection tunnel, TunnelEnd end)
    {
        var why = tunnel.StalledOut ? $"{end}: the peer stopped reading" : end.ToString();
        ServerLog.TunnelDown(log, session.Tenant.Name, session.ShortId, id, tunnel.Queue == 0 ? why : $"{why} (queue {tunnel.Queue})");
        IsotunMetrics.Instance.Closed(end switch
        {
            TunnelEnd.BadFrame => CloseReason.BadFrame,
            TunnelEnd.DeadPeer => CloseReason.DeadPeer,
            TunnelEnd.Replaced or TunnelEnd.PrimaryEnded => CloseReason.Replaced,
            TunnelEnd.UserDisconnect => CloseReason.UserDisconnect,
            TunnelEnd.Shutdown => CloseReason.Shutdown,
            TunnelEnd.Revoked => CloseReason.Revoked,
            _ => CloseReason.PeerClosed,
        });
        if (end == TunnelEnd.UserDisconnect) server.Sessions.End(session, "user disconnected");
    }

    /// <summary>The 200 CONNECTED reply for this tenant and session; the wire syntax is <see cref="ConnectReply"/>'s.</summary>
    private static byte[] BuildConnectedResponse(TenantRuntime tenant, VpnSession session, IPAddress address, int mtu, IsotunExtension accepted, int queues, int queue)
    {
        var c = tenant.Config;
        bool dual = session.Address6 is not null && tenant.Pool6 is not null;
        return new ConnectReply
        {
            ServerName = "isotun",
            Address = address,
            Netmask = tenant.Pool.Netmask,
            Address6 = dual ? session.Address6 : null,
            Network6 = dual ? tenant.Pool6 : null,
            Dns = c.Dns,
            SplitInclude = tenant.Routes,
            Dpd = c.Dpd,
            Keepalive = c.Keepalive,
            BaseMtu = Math.Max(1500, mtu),
            Mtu = mtu,
            Extensions = accepted,
            Queues = queues,
            Queue = queue,
        }.Write();
    }

    private static TimeSpan Min(long remainingMs, TimeSpan limit) =>
        TimeSpan.FromMilliseconds(Math.Max(0, Math.Min(remainingMs, (long)limit.TotalMilliseconds)));

    /// <summary>A reply of the HTTP phase that the peer did not take within <c>limits.write-timeout</c>.</summary>
    private sealed class WriteTimeoutException : Exception;

    /// <summary>Runs one reply's writes under <c>limits.write-timeout</c>; a peer that never reads makes it throw <see cref="WriteTimeoutException"/>.</summary>
    private async Task WithWriteDeadlineAsync(Func<CancellationToken, Task> write, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(server.Config.Limits.WriteTimeout);
        try
        {
            await write(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new WriteTimeoutException();
        }
    }

    private Task WriteXmlAsync(Stream tls, int status, string xml, string? setCookie, CancellationToken ct) =>
        WithWriteDeadlineAsync(t => WriteXmlNowAsync(tls, status, xml, setCookie, t), ct);

    private static async Task WriteXmlNowAsync(Stream tls, int status, string xml, string? setCookie, CancellationToken ct)
    {
        var body = Encoding.UTF8.GetBytes(xml);
        var sb = new StringBuilder();
        sb.Append("HTTP/1.1 ").Append(status).Append(status == 200 ? " OK" : status == 401 ? " Unauthorized" : " Error").Append("\r\n");
        sb.Append("Content-Type: text/xml\r\n");
        sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("X-Transcend-Version: 1\r\n");
        sb.Append("Cache-Control: no-store\r\n");
        if (setCookie is not null) sb.Append("Set-Cookie: ").Append(setCookie).Append("\r\n");
        sb.Append("\r\n");
        await tls.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()), ct).ConfigureAwait(false);
        await tls.WriteAsync(body, ct).ConfigureAwait(false);
        await tls.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Refuses a request: the status with "Connection: close", then the close counted and logged with <paramref name="detail"/>.</summary>
    private async Task RefuseAsync(Stream tls, int status, string reason, string detail, CancellationToken ct)
    {
        await WriteSimpleAsync(tls, status, reason, ct).ConfigureAwait(false);
        Close(CloseReason.BadRequest, detail);
    }

    /// <summary>A refusal with "Connection: close": best effort, since the connection ends after it either way.</summary>
    private async Task WriteSimpleAsync(Stream tls, int status, string reason, CancellationToken ct)
    {
        try
        {
            var text = $"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            await WithWriteDeadlineAsync(async t =>
            {
                await tls.WriteAsync(Encoding.ASCII.GetBytes(text), t).ConfigureAwait(false);
                await tls.FlushAsync(t).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or WriteTimeoutException) { }
    }

    private Task WriteServiceUnavailableAsync(Stream tls, string reason, CancellationToken ct) => WithWriteDeadlineAsync(async t =>
    {
        var text = $"HTTP/1.1 503 Service Unavailable\r\nX-Reason: {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        await tls.WriteAsync(Encoding.ASCII.GetBytes(text), t).ConfigureAwait(false);
        await tls.FlushAsync(t).ConfigureAwait(false);
    }, ct);

    private void LoginBanned(string tenant, string scope, string who)
    {
        IsotunMetrics.Instance.LoginBan(scope);
        ServerLog.LoginBanned(log, tenant, scope, who, (int)server.Config.Limits.LoginBanTime.TotalSeconds);
    }

    private void Close(CloseReason reason, string detail)
    {
        IsotunMetrics.Instance.Closed(reason);
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

    /// <summary>The client's software as its CONNECT names it (User-Agent), bounded and printable, for the admin API.</summary>
    private static string? ClientVersion(HttpRequestHead head)
    {
        var agent = head.Headers.Get("User-Agent");
        if (string.IsNullOrEmpty(agent)) return null;
        var clean = new string(agent.Where(c => c >= 0x20 && c < 0x7F).Take(64).ToArray());
        return clean.Length == 0 ? null : clean;
    }

    private static string Sanitize(string s) => s.Length > 32 ? s[..32] : s;

    // A user name that was refused may be a mistyped password: log only a bounded, harmless form of it.
    private static string PasswordSafe(string user) => Security.PasswordFile.IsValidUserName(user) ? user : "(invalid name)";
}
