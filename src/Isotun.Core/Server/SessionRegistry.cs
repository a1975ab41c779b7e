using System.Collections.Concurrent;
using System.Net;
using Isotun.Protocol.Cookies;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// All sessions of the server, keyed by the id sealed inside their cookie. Each new session gets a memory budget of
/// <paramref name="sessionMemory"/> bytes (read when it is made, so a reload applies to new sessions).
/// </summary>
public sealed class SessionRegistry(IStateStore state, TimeProvider time, TimeSpan cookieLifetime, ILogger log, Func<long>? sessionMemory = null)
{
    private readonly ConcurrentDictionary<Guid, VpnSession> _sessions = new();
    private readonly Lock _createLock = new();

    public int Count => _sessions.Count;

    public int CountFor(TenantRuntime tenant) => _sessions.Values.Count(s => s.Tenant == tenant);

    public IEnumerable<VpnSession> All => _sessions.Values;

    /// <summary>
    /// A new session for a login, within the limits: the user's (<c>max-sessions-per-user</c>; over it the user's
    /// oldest session without a connection is ended, or the login refused, as the tenant says), the tenant's and the
    /// server's. Checked and created under one lock, so concurrent logins cannot slip past a limit. Null when refused,
    /// with the limit that refused it.
    /// </summary>
    public SessionTicket? TryCreate(TenantRuntime tenant, string user, int serverMax, out SessionLimit refusedBy, ulong credential = 0)
    {
        lock (_createLock)
        {
            if (!Admit(tenant, user, serverMax, out refusedBy)) return null;
            var ticket = new SessionTicket(Guid.NewGuid(), tenant.Name, user, time.GetUtcNow() + cookieLifetime, credential);
            _sessions[ticket.SessionId] = NewSession(ticket, tenant, time.GetUtcNow());
            return ticket;
        }
    }

    /// <summary>Whether one more session of <paramref name="user"/> fits the limits (call under the lock); over the
    /// user's, the oldest one without a connection is ended first when the tenant says so.</summary>
    private bool Admit(TenantRuntime tenant, string user, int serverMax, out SessionLimit refusedBy)
    {
        refusedBy = SessionLimit.None;
        var config = tenant.Config;
        int mine = 0;
        VpnSession? oldestIdle = null;
        foreach (var s in _sessions.Values)
        {
            if (s.Tenant != tenant || s.User != user) continue;
            mine++;
            if (s.Connection is null && (oldestIdle is null || s.ExpiresAt < oldestIdle.ExpiresAt)) oldestIdle = s;
        }
        if (mine >= config.MaxSessionsPerUser)
        {
            if (config.OverUserLimit == UserLimitAction.Refuse || oldestIdle is null)
            {
                refusedBy = SessionLimit.User;
                return false;
            }
            End(oldestIdle, "replaced by a new login of the same user");
        }
        if (CountFor(tenant) >= config.MaxSessions) refusedBy = SessionLimit.Tenant;
        else if (Count >= serverMax) refusedBy = SessionLimit.Server;
        return refusedBy == SessionLimit.None;
    }

    /// <summary>A live session by id, or null (never rebuilt: a queue joins only a session that has a primary).</summary>
    public VpnSession? TryGet(Guid id) => _sessions.GetValueOrDefault(id);

    /// <summary>
    /// The session of a valid cookie; after a server restart it is rebuilt from the cookie itself, logged in when the
    /// cookie was issued (its expiry less the lifetime), not when it came back: which of a user's sessions is the newer
    /// (the one that carries its site) does not hang on the order they reconnect in. A rebuilt session counts against
    /// the limits as a login does, so cookies kept over a restart cannot add up to more sessions than logins could;
    /// null when it does not fit, with the limit that refused it.
    /// </summary>
    public VpnSession? GetOrRestore(SessionTicket ticket, TenantRuntime tenant, int serverMax, out SessionLimit refusedBy)
    {
        refusedBy = SessionLimit.None;
        if (_sessions.TryGetValue(ticket.SessionId, out var live)) return live;
        lock (_createLock)
        {
            if (_sessions.TryGetValue(ticket.SessionId, out live)) return live;
            if (!Admit(tenant, ticket.User, serverMax, out refusedBy)) return null;
            return _sessions[ticket.SessionId] = NewSession(ticket, tenant, Min(ticket.ExpiresAt - cookieLifetime, time.GetUtcNow()));
        }
    }

    /// <summary>The session of <paramref name="ticket"/>, logged in at <paramref name="since"/>, with the tenant's limits
    /// for its user and a fresh memory budget.</summary>
    private VpnSession NewSession(SessionTicket ticket, TenantRuntime tenant, DateTimeOffset since) =>
        new(ticket.SessionId, tenant, ticket.User, ticket.ExpiresAt)
        {
            Since = since,
            Limits = tenant.LimitsFor(ticket.User),
            Credential = ticket.Credential,
            Budget = new(sessionMemory?.Invoke() ?? MemoryBudget.DefaultBytes),
        };

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>
    /// Gives a session its addresses for a CONNECT: on a cluster node the IPv4 address the cluster binds to it (which the
    /// node's pool must agree to), else the one the client asks back, the user's sticky one or any free one. Null when the
    /// session has them; else why not, as the client is told and as the log says.
    /// </summary>
    public async Task<(string Client, string Log)?> AddressAsync(VpnSession session, IPAddress? asked, CancellationToken ct)
    {
        var tenant = session.Tenant;
        IPAddress? clustered = null;
        if (tenant.Cluster is not null && !session.HasAddresses)
        {
            (clustered, var refusal) = await tenant.ClusterAddressAsync(session, ct).ConfigureAwait(false);
            if (clustered is null) return (refusal!, $"tenant {tenant.Name}: {refusal}");
            asked = clustered;
        }
        if (!tenant.TryLease(session, asked, authoritative: clustered is not null)) return ("no address left in the pool", $"tenant {tenant.Name}: pool exhausted");
        if (clustered is not null && !clustered.Equals(session.Address))
        {
            tenant.Release(session);
            return ("the cluster's address is in use on this node",
                $"tenant {tenant.Name}: the cluster's address {clustered} for {session.User} is in use on this node");
        }
        return null;
    }

    /// <summary>
    /// A new primary connection for a session: it starts a new group of <paramref name="queues"/> queues and takes the
    /// session's routes (the old group is let go). The attachment must be disposed when the connection ends.
    /// </summary>
    public SessionAttachment AttachPrimary(VpnSession session, Downlink primary, int queues)
    {
        session.AttachPrimary(primary, queues);
        return new SessionAttachment(session, primary);
    }

    /// <summary>A further connection joining the session's group as queue <paramref name="index"/>; null when it cannot (<see cref="VpnSession.TryAttachQueue"/>).</summary>
    public SessionAttachment? TryAttachQueue(VpnSession session, int index, Downlink connection) =>
        session.TryAttachQueue(index, connection) ? new SessionAttachment(session, connection) : null;

    /// <summary>
    /// Ends a session for good: its cookie is revoked and its address goes back to the pool. A revocation the state
    /// file cannot take ends the session all the same (the store holds it until the server stops), and is logged.
    /// </summary>
    public void End(VpnSession session, string reason)
    {
        try
        {
            state.Revoke(session.Id, session.ExpiresAt);
        }
        catch (StateStoreException e)
        {
            log.LogError("tenant={Tenant} session={Session}: {Error}", session.Tenant.Name, session.ShortId, e.Message);
        }
        Remove(session, reason);
    }

    /// <summary>
    /// Takes the session out: its routes and addresses go, and the end is logged. False when it was gone already (or
    /// its id is another session's now: only this one is taken out).
    /// </summary>
    private bool Remove(VpnSession session, string reason)
    {
        if (!_sessions.TryRemove(new KeyValuePair<Guid, VpnSession>(session.Id, session))) return false;
        LetGo(session);
        ServerLog.SessionEnded(log, session.Tenant.Name, session.ShortId, reason);
        return true;
    }

    private static void LetGo(VpnSession session)
    {
        session.MarkEnded();
        session.Tenant.Detach(session);
        session.Tenant.Release(session);
    }

    /// <summary>
    /// Lets go of the session of a CONNECT that lost a race with the session's end (a kick, a revocation, a changed
    /// credential between the cookie's check and the attachment): taken out if the registry still holds it (its cookie
    /// was revoked meanwhile), and its addresses go back to the pool either way: an ended session may have been given
    /// them after its end, by a lease that was under way (a cluster node's claim is a round trip to the store).
    /// </summary>
    public void Abandon(VpnSession session, string reason)
    {
        if (!Remove(session, reason)) LetGo(session);
    }

    /// <summary>
    /// Ends a session at once, from outside (an operator's kick, a revoked user, a removed user or changed password):
    /// its cookie is revoked and its connections are closed, so the client cannot come back with it.
    /// </summary>
    public void Kick(VpnSession session, string reason) => Kick([(session, reason)]);

    /// <summary>
    /// Kicks every session <paramref name="reason"/> gives a reason for (null keeps it); returns how many were kicked.
    /// All end at once, and their peers share one second to be told (<see cref="Downlink.Kick(IReadOnlyList{ValueTuple{Downlink, string}})"/>).
    /// </summary>
    public int KickWhere(Func<VpnSession, string?> reason)
    {
        var kicks = new List<(VpnSession, string)>();
        foreach (var s in _sessions.Values)
            if (reason(s) is { } why) kicks.Add((s, why));
        Kick(kicks);
        return kicks.Count;
    }

    private void Kick(IReadOnlyList<(VpnSession Session, string Reason)> kicks)
    {
        var links = new List<(Downlink, string)>();
        foreach (var (session, reason) in kicks)
        {
            var live = session.Connection;
            End(session, reason);
            if (live is not null) links.Add((live, reason));
            // A connection attached meanwhile (a CONNECT that passed its checks just before the end) is ended too: read
            // after the end, it is either here or it checks again after attaching and finds the session gone.
            if (session.Connection is { } late && late != live) links.Add((late, reason));
        }
        Downlink.Kick(links);
    }

    /// <summary>Drops sessions whose cookie expired while no connection was attached.</summary>
    public void Reap()
    {
        var now = time.GetUtcNow();
        foreach (var s in _sessions.Values)
        {
            // An expired cookie is refused anyway: nothing to revoke.
            if (s.ExpiresAt <= now && s.Connection is null) Remove(s, "cookie expired");
        }
    }
}

/// <summary>Which limit refused a new session.</summary>
public enum SessionLimit { None, User, Tenant, Server }
