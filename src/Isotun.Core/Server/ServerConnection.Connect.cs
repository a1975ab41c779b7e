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

/// <summary>CONNECT: the cookie checked, the session resumed or a queue joined, the reply, the tunnel and its end.</summary>
internal sealed partial class ServerConnection
{
    private async Task ConnectAsync(Stream tls, ConnectionReader reader, HttpRequestHead head, CancellationToken stopping)
    {
        if (head.Target != "/CSCOSSLC/tunnel")
        {
            await RefuseAsync(tls, 404, "Not Found", "CONNECT to an unknown target", stopping).ConfigureAwait(false);
            return;
        }
        if (!SessionCookie.TryGet(head.Headers, out var cookie) || server.Cookies.TryOpen(cookie, out var ticket) != CookieOpenResult.Ok || ticket is null
            || !server.Authenticator.Tenants.TryGetValue(ticket.Tenant, out var tenant) || !Usable(ticket, tenant))
        {
            await RefuseCookieAsync(tls, "cookie rejected", stopping).ConfigureAwait(false);
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

        if (server.Sessions.GetOrRestore(ticket, tenant, server.Config.Limits.MaxSessions, out var limit) is not { } session)
        {
            // Refused as a login would be: the client that logs in again is told which limit.
            await RefuseCookieAsync(tls, limit == SessionLimit.User ? "too many sessions for this user" : "too many sessions for this group", stopping).ConfigureAwait(false);
            return;
        }
        IPAddress.TryParse(head.Headers.Get("X-CSTP-Address") ?? "", out var asked);
        if (await server.Sessions.AddressAsync(session, asked, stopping).ConfigureAwait(false) is { } refused)
        {
            await WriteServiceUnavailableAsync(tls, refused.Client, stopping).ConfigureAwait(false);
            Close(CloseReason.Error, refused.Log);
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
        var tunnel = new TunnelConnection(id, session, tls, reader, mtu, accepted, log, stopping, crypto: CryptoFor(session.Tenant)) { MorePending = _morePending, Throttle = server.LogThrottle };
        // A new primary starts a new group: the old one (a lost connection and its queues) is let go. Attached
        // before the reply, so the client's queues, which it opens as soon as it reads the reply, find it; frames
        // for it wait in its queue until its writer starts, after the reply.
        TunnelEnd end;
        try
        {
            using (var attached = server.Sessions.AttachPrimary(session, tunnel.Link, queues))
            {
                if (!StillAllowed(ticket, tenant, session))
                {
                    server.Sessions.Abandon(session, "its cookie was refused while it connected");
                    await RefuseCookieAsync(tls, "cookie rejected: the session ended while it connected", stopping).ConfigureAwait(false);
                    return;
                }
                if (!await ReplyConnectedAsync(tls, BuildConnectedResponse(tenant, session, address, mtu, accepted, queues, 0), stopping).ConfigureAwait(false)) return;
                attached.Up();
                var extensions = accepted == IsotunExtension.None ? "none" : IsotunExtensions.Format(accepted) + (queues > 1 ? $"={queues}" : "");
                session.Connected(_peer.Remote, ClientVersion(head), extensions);
                ServerLog.TunnelUp(log, tenant.Name, session.ShortId, id, session.User, address.ToString(), mtu, extensions, _peer.Remote?.ToString() ?? "-");
                end = await tunnel.RunAsync().ConfigureAwait(false);
                await IoThreads.LeaveAsync(); // ending a session writes the state file
            }
        }
        finally
        {
            tunnel.Discard(); // a connection that never ran: refused, or its reply failed
        }
        Ended(session, tunnel, end);
        if (end is TunnelEnd.Shutdown or TunnelEnd.Revoked) await GoingAwayAsync(tls).ConfigureAwait(false);
    }

    /// <summary>
    /// The cookie's checks once more, after the connection is attached: a kick, a revocation or a changed credential
    /// between the first check and the attachment (a cluster node's address claim is a round trip to etcd) found no
    /// connection to end, and must not leave one running. From the attachment on, a kick finds this one
    /// (<see cref="SessionRegistry.Kick"/> reads the connection after ending the session).
    /// </summary>
    private bool StillAllowed(SessionTicket ticket, TenantRuntime tenant, VpnSession session) =>
        server.Sessions.TryGet(ticket.SessionId) == session && Usable(ticket, tenant);

    /// <summary>A cookie's session is not revoked, it was issued within the lifetime cookies have now, and its user and credential still hold.</summary>
    private bool Usable(SessionTicket ticket, TenantRuntime tenant) =>
        server.WithinCookieLifetime(ticket) && !server.State.IsRevoked(ticket.SessionId) && server.CredentialStillValid(tenant, ticket.User, ticket.Credential, LoggedIn(ticket));

    /// <summary>When the cookie was issued: its expiry less the lifetime, give or take the second the expiry is rounded to.</summary>
    private DateTimeOffset LoggedIn(SessionTicket ticket) => ticket.ExpiresAt - server.Config.Cookie.Lifetime + TimeSpan.FromSeconds(1);

    private async Task RefuseCookieAsync(Stream tls, string why, CancellationToken ct)
    {
        server.Metrics.Auth("-", AuthOutcome.CookieRejected);
        await RefuseAsync(tls, 401, "Cookie is not acceptable", why, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// A further connection of a live session, joining its group as queue k (the `queues` extension). It
    /// carries data like the primary; it ends with the primary, and the session goes on without it if it ends first.
    /// </summary>
    private async Task JoinQueueAsync(Stream tls, ConnectionReader reader, SessionTicket ticket, TenantRuntime tenant, string queueHeader, IsotunExtension accepted, CancellationToken stopping)
    {
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
        var tunnel = new TunnelConnection(id, session, tls, reader, tenant.Mtu, accepted, log, stopping, index.Value, CryptoFor(tenant)) { MorePending = _morePending, Throttle = server.LogThrottle };
        // The primary may have gone since the check: then this connection ends, as its group has.
        TunnelEnd end;
        try
        {
            using (var attached = server.Sessions.TryAttachQueue(session, index.Value, tunnel.Link))
            {
                if (attached is null)
                {
                    await RefuseAsync(tls, 409, "Conflict", $"queue {index}: the primary connection ended meanwhile", stopping).ConfigureAwait(false);
                    return;
                }
                if (!StillAllowed(ticket, tenant, session))
                {
                    await RefuseCookieAsync(tls, "cookie rejected: the session ended while it connected", stopping).ConfigureAwait(false);
                    return;
                }
                if (!await ReplyConnectedAsync(tls, BuildConnectedResponse(tenant, session, address, tenant.Mtu, accepted, queues, index.Value), stopping).ConfigureAwait(false)) return;
                attached.Up();
                ServerLog.QueueUp(log, tenant.Name, session.ShortId, id, index.Value, queues, _peer.Remote?.ToString() ?? "-");
                end = await tunnel.RunAsync().ConfigureAwait(false);
                await IoThreads.LeaveAsync(); // ending a session writes the state file
            }
        }
        finally
        {
            tunnel.Discard(); // a connection that never ran: refused, or its reply failed
        }
        Ended(session, tunnel, end);
        if (end is TunnelEnd.Shutdown or TunnelEnd.Revoked) await GoingAwayAsync(tls).ConfigureAwait(false);
    }

    /// <summary>
    /// The tunnel ends cleanly with a TLS close_notify: after a kick or a revocation (the CSTP DISCONNECT already went
    /// out, so the peer reads it before the close), and when the server stops. On a stop no DISCONNECT or TERMINATE is
    /// sent, since on those openconnect gives up. A closed connection is what makes openconnect (and isotun connect) reconnect with
    /// the cookie, to the next server process or, behind a gateway, to another node; the session and its cookie stay valid.
    /// </summary>
    private static async Task GoingAwayAsync(Stream tls)
    {
        Func<Task>? shutdown = tls switch
        {
            TlsRecordStream records => () => records.ShutdownAsync(),
            SslStream ssl => ssl.ShutdownAsync,
            _ => null,
        };
        if (shutdown is null) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await shutdown().WaitAsync(cts.Token).ConfigureAwait(false);
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
        server.Metrics.Closed(end switch
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
            SplitInclude = tenant.RoutesFor(session.User),
            Dpd = c.Dpd,
            Keepalive = c.Keepalive,
            BaseMtu = Math.Max(1500, mtu),
            Mtu = mtu,
            Extensions = accepted,
            Queues = queues,
            Queue = queue,
        }.Write();
    }


    /// <summary>The client's software as its CONNECT names it (User-Agent), bounded and printable, for the admin API.</summary>
    private static string? ClientVersion(HttpRequestHead head)
    {
        var agent = head.Headers.Get("User-Agent");
        if (string.IsNullOrEmpty(agent)) return null;
        var clean = new string(agent.Where(c => c >= 0x20 && c < 0x7F).Take(64).ToArray());
        return clean.Length == 0 ? null : clean;
    }
}
