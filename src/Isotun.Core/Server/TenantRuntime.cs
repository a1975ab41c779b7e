using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Isotun.Logs;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;
using Isotun.Security;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.State.Cluster;
using Isotun.Transport;
using Isotun.Tun;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// Everything one tenant owns at run time: its namespace and TUN, its pools, its users and CA, its limits,
/// and the table that maps a leased address to the session holding it. Packets read from the TUN go only
/// to this tenant's sessions.
/// </summary>
public sealed class TenantRuntime : IDisposable
{
    private readonly ConcurrentDictionary<IpKey, TenantSession> _routes = new();
    // Who holds each leased address, attached or not: a session waiting for its reconnect still owns its addresses.
    private readonly ConcurrentDictionary<IpKey, TenantSession> _holders = new();
    private readonly ConcurrentDictionary<string, (TokenBucket, TokenBucket)> _limits = new(StringComparer.Ordinal);
    private readonly ILogger _log;
    private readonly IStateStore _state;
    // The pools, swapped whole by a reload that changes them. Leases and releases, and the swap, hold _leaseGate, so
    // that no lease is made in pools about to be replaced; the packet path reads _pools without it.
    private volatile TenantPools _pools;
    private readonly Lock _leaseGate = new();
    private readonly ITenantNetwork _network;
    private ITunQueue[] _tuns = [];
    private TunQueueReader[] _readers = [];
    // Who owns each site changes under this lock (attach, detach, reload); the packet path reads without it.
    private readonly Lock _siteGate = new();
    private volatile SiteTable _sites;
    // Attach and detach of clients, for an uplink that answers ARP and NDP for them: applied in order by one worker, off
    // the locks that attach and detach run under (each runs `ip` and sends an ARP or NDP announcement).
    private readonly System.Threading.Channels.Channel<(IPAddress Address, bool Attached)> _announcements =
        System.Threading.Channels.Channel.CreateUnbounded<(IPAddress, bool)>(new() { SingleReader = true });
    private Task _announcer = Task.CompletedTask;

    private readonly TimeProvider _time;

    /// <param name="network">Where the TUN comes from: the tenant's namespace by default, a twin in tests.</param>
    /// <param name="metrics">The server's instruments; a tenant on its own (tests) gets its own.</param>
    /// <param name="serverCas">The server's <c>tls.client-ca</c>, which the tenant trusts without a <c>client-ca</c> of its own.</param>
    public TenantRuntime(TenantConfig config, IStateStore state, ILogger log, TimeProvider? time = null, ITenantNetwork? network = null, IsotunMetrics? metrics = null,
        X509Certificate2Collection? serverCas = null)
    {
        _serverCas = serverCas;
        Metrics = metrics ?? new IsotunMetrics();
        _time = time ?? TimeProvider.System;
        Config = config;
        _log = log;
        _state = state;
        _pools = new TenantPools(config.Pool, config.Pool6);
        _network = network ?? new TenantNamespace(config);
        _sites = SiteTable.Build(config);
        Traffic = Metrics.Tenant(config.Name);
        Passwords = config.PasswordFile is null ? null : PasswordFile.Load(config.PasswordFile);
        ClientCas = config.ClientCa is null ? null : PemLoader.LoadBundle(config.ClientCa);
        RevokedCertificates = config.ClientCrl is null ? RevocationList.Empty : RevocationList.Load(config.ClientCrl);
        WarnIfStale(config, RevokedCertificates);
        ReserveStoredLeases(_pools, _state.Leases(Name));
        CertificatesTrustedSince = RecallTrust();
    }

    private readonly X509Certificate2Collection? _serverCas;

    /// <summary>Whom the tenant trusts with <paramref name="config"/> and its own CAs <paramref name="cas"/> (null: the server's).</summary>
    private TrustRecord Trust(TenantConfig config, X509Certificate2Collection? cas, DateTimeOffset since) => new(
        [.. ((IEnumerable<X509Certificate2>?)(cas ?? _serverCas) ?? []).Select(c => c.Thumbprint).Distinct().Order(StringComparer.Ordinal)],
        [.. config.EffectiveOus.Distinct().Order(StringComparer.Ordinal)],
        since);

    /// <summary>
    /// Since when certificate logins count, from whom the tenant trusted when the server last ran: from now when it
    /// trusts less than then (a CA or OU taken out while the server was down, or a reload that narrowed it before a
    /// restart), else as recorded. Recorded again when it changed.
    /// </summary>
    private DateTimeOffset RecallTrust()
    {
        TrustRecord? before;
        try
        {
            before = _state.GetTrust(Name);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or StateStoreException)
        {
            // Not known whether it narrowed: only logins from now count, and their users log in again.
            _log.LogError("tenant={Tenant}: whom it trusted could not be read from the state file ({Error}); cookies of earlier certificate logins are refused", Name, e.Message);
            return _time.GetUtcNow();
        }
        var now = Trust(Config, ClientCas, before?.Since ?? DateTimeOffset.UnixEpoch);
        if (before is not null && before.NarrowedBy(now))
        {
            now = now with { Since = _time.GetUtcNow() };
            _log.LogWarning("tenant={Tenant}: it trusts fewer CAs or OUs than when the server last ran: cookies of earlier certificate logins are refused", Name);
        }
        if (before is null || !before.SameTrust(now) || before.Since != now.Since) RememberTrust(now);
        return now.Since;
    }

    /// <summary>Records whom the tenant trusts after a reload; a disk that refuses is logged (the narrowing holds in memory).</summary>
    private void RememberTrust(TrustRecord trust)
    {
        try
        {
            _state.SaveTrust(Name, trust);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or StateStoreException or IOException)
        {
            _log.LogError("tenant={Tenant}: whom it trusts could not be recorded in the state file ({Error}); after a restart, cookies of certificate logins from before a narrowing may be taken again",
                Name, e.Message);
        }
    }

    /// <summary>The live settings; swapped whole by <see cref="TryApply"/> on a reload.</summary>
    public TenantConfig Config { get; private set; }
    public string Name => Config.Name;

    /// <summary>The server's instruments, which this tenant's sessions and connections count in.</summary>
    public IsotunMetrics Metrics { get; }
    // Parsed and checked when the config was loaded; a reload changes them only when no live lease is outside the new
    // ones. Read from the pools in use, so that a session never gets an address of one pool and the netmask of another.
    public IpNetwork Pool => _pools.V4.Network;
    public IpNetwork? Pool6 => _pools.V6?.Network;
    public IReadOnlyList<IpNetwork> Routes => Config.Routes;
    public PasswordFile? Passwords { get; private set; }
    /// <summary>On a cluster node: where the tenant's IPv4 addresses come from (the cluster's blocks); null on one node alone.</summary>
    public ClusterAddresses? Cluster { get; set; }

    // A refusal for a pool the cluster records otherwise is logged once a minute, not at every CONNECT.
    private readonly LogThrottle _poolRefusals = new(burst: 1, periodSeconds: 60);

    /// <summary>
    /// On a cluster node, the IPv4 address the cluster binds to this session: the user's own for their first session
    /// (the same on every node), a binding of its own for each further session (also when the user's own address is
    /// served by another node now). Null, with the reason, when there is none: the pool is full, or the store cannot
    /// be reached and this node never served the user.
    /// </summary>
    public async Task<(IPAddress? Address, string? Refusal)> ClusterAddressAsync(TenantSession session, CancellationToken ct)
    {
        if (Cluster is null || session.HasAddresses) return (null, null);
        for (int n = 1; n <= Config.MaxSessionsPerUser; n++)
        {
            string binding = n == 1 ? session.User : $"{session.User}~{n}";
            AddressClaim claim;
            try
            {
                claim = await Cluster.ClaimAsync(binding, ct).ConfigureAwait(false);
            }
            catch (InvalidOperationException e)
            {
                // The cluster records another pool for the tenant, which nodes still use: nothing can be handed out here.
                if (_poolRefusals.Allow("pool", out _)) _log.LogError("tenant={Tenant} cluster: {Error}", Name, e.Message);
                return (null, "the cluster's pool for this group differs from this server's");
            }
            catch (KeyValueStoreException e)
            {
                // etcd away: a user this node served before keeps the address it had here (the cluster bound it then),
                // if that was recently enough: a binding unused for binding-ttl-days may have been released since, and
                // its address given to another user.
                var stored = n == 1 ? _state.GetLease(Name, session.User) : null;
                return stored?.Address is { } address && _time.GetUtcNow() - stored.Updated < Cluster.BindingTtl() && !HeldByOther(address, session)
                    ? (address, null)
                    : (null, $"the cluster's store cannot be reached ({e.Message})");
            }
            if (claim.Outcome == AddressClaimOutcome.Exhausted) return (null, "no address left in the pool");
            if (claim.Outcome != AddressClaimOutcome.New)
            {
                // An address bound before may be served now by any node, whoever holds its block (which only says who
                // may hand out the block's free addresses): a user's session served by another node with an address of
                // this node's block is the usual case after the user moved there. The user's own address is served
                // here unless another node serves it now to another session (then this is a further session of the
                // user, on another node: it gets a binding of its own). The same session published by another node is
                // this one moving here, its old node dead or left: it keeps its address at once.
                bool elsewhere;
                try
                {
                    elsewhere = await Cluster.ServedElsewhereAsync(claim.Address!, session.Id, ct).ConfigureAwait(false);
                }
                catch (KeyValueStoreException e)
                {
                    return (null, $"the cluster's store cannot be reached ({e.Message})");
                }
                if (elsewhere) continue;
            }
            if (HeldByOther(claim.Address, session)) continue; // the user's own address is in use by another session here
            session.ClusterBinding = binding;
            return (claim.Address, null);
        }
        return (null, $"no address left for another session of {session.User}");
    }

    /// <summary>The tenant's sites and east-west policy (swapped whole on a reload).</summary>
    public SiteTable Sites => _sites;

    /// <summary>The routes to push to a session of <paramref name="user"/>: the tenant's, and the sites the user's may reach.</summary>
    public IReadOnlyList<IpNetwork> RoutesFor(string user)
    {
        var sites = _sites;
        var routes = Routes;
        if (sites.IsEmpty) return routes;
        // Clients route each address family apart: with no split route of a family, the whole family goes through the
        // tunnel already, and a site subnet of it would turn that into a split tunnel (vpnc-script and isotun connect
        // both do so). The IPv6 pool goes out as a split route of its own (ConnectReply), so IPv6 is split whenever
        // the tenant has one.
        bool split4 = routes.Any(r => r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
        bool split6 = Pool6 is not null || routes.Any(r => r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6);
        return [.. routes, .. sites.RoutesFor(sites.OfUser(user)).Where(n => !routes.Contains(n)
            && (n.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? split4 : split6))];
    }

    /// <summary>This tenant's own client CA, or null to use the server-wide one.</summary>
    public X509Certificate2Collection? ClientCas { get; private set; }

    /// <summary>
    /// When whom the tenant trusts with a certificate last narrowed (a CA it trusted, by its own client-ca or the
    /// server's, no longer among those it trusts; an OU taken out of allowed-ous), at a
    /// reload or while the server was down: certificate logins from before then end, and their cookies are refused,
    /// since which of them the change concerns cannot be told from a cookie. Their users log in again, and only
    /// certificates still trusted get in. Kept in the state file, so it holds across restarts.
    /// </summary>
    public DateTimeOffset CertificatesTrustedSince { get; private set; } = DateTimeOffset.MinValue;

    /// <summary>A client CRL past its next update is logged (at start and at each reload), not refused: what it lists still holds.</summary>
    private void WarnIfStale(TenantConfig config, RevocationList crl)
    {
        if (config.ClientCrl is { } path && crl.IsStale(_time.GetUtcNow())) ServerLog.CrlStale(_log, config.Name, path, crl.NextUpdate!.Value);
    }


    /// <summary>Serials of revoked client certificates (<c>client-crl</c>); empty without one.</summary>
    public RevocationList RevokedCertificates { get; private set; } = RevocationList.Empty;

    /// <summary>On a cluster node: the certificates other nodes' CRLs revoke, refused here too before this node's CRL lists them.</summary>
    public SharedState? SharedRevocations { get; set; }

    /// <summary>Whether a client certificate of this tenant (serial number in hex) is revoked, by this node's CRL or another node's.</summary>
    public bool IsCertificateRevoked(string serialHex) =>
        RevokedCertificates.IsRevoked(serialHex) || SharedRevocations?.IsCertificateRevoked(Name, serialHex) == true;

    /// <summary>Whether the certificate a cookie's credential stamp names is revoked, by this node's CRL or another node's.</summary>
    public bool IsCertificateStampRevoked(ulong stamp) =>
        RevokedCertificates.IsRevokedStamp(stamp) || SharedRevocations?.IsCertificateStampRevoked(Name, stamp) == true;
    public TenantTraffic Traffic { get; }
    public int Mtu => Config.Mtu;
    public IPAddress Gateway => _pools.V4.Gateway;
    public IPAddress? Gateway6 => _pools.V6?.Gateway;
    /// <summary>The TUN's first queue (null before <see cref="Start"/>); every queue has the same flags.</summary>
    public ITunQueue? Tun => _tuns.Length > 0 ? _tuns[0] : null;

    /// <summary>The TUN queue a session's queue <paramref name="queue"/> writes into.</summary>
    public ITunQueue TunQueue(int queue) => _tuns[queue % _tuns.Length];
    public string? NamespaceName => _network.Name;

    /// <summary>
    /// Applies a reloaded tenant config without touching sessions: users, CA and OUs, server names, limits,
    /// routes, DNS, timers and policy, and new pools when every live lease fits in them. Other changes to what the
    /// kernel holds (namespace, device, MTU, uplink, offload, queues) need a restart: then nothing is applied and the
    /// reason is returned.
    /// </summary>
    public string? TryApply(TenantConfig next)
    {
        var reason = Prepare(next, out var commit);
        commit?.Invoke();
        return reason;
    }

    /// <summary>
    /// The first half of <see cref="TryApply"/>: checks <paramref name="next"/> and loads its files, changing nothing.
    /// Returns why it cannot be applied live, or null with <paramref name="commit"/>, which applies it and cannot
    /// fail; so a server reload applies every tenant or none.
    /// </summary>
    public string? Prepare(TenantConfig next, out Action? commit)
    {
        commit = null;
        var c = Config;
        var structural = new List<string>();
        if (next.Namespace != c.Namespace) structural.Add("namespace");
        // A cluster's nodes share the IPv4 pool, in blocks: one node alone cannot change it.
        if (next.Pool != c.Pool && Cluster is not null) structural.Add("pool (the cluster's nodes share it: restart every node with the new one)");
        if (next.Device != c.Device) structural.Add("device");
        if (next.Mtu != c.Mtu) structural.Add("mtu");
        if (next.Uplink != c.Uplink) structural.Add("uplink");
        if (next.Offload != c.Offload) structural.Add("offload");
        if (next.Queues != c.Queues) structural.Add("queues");
        if (structural.Count > 0) return $"changed {string.Join(", ", structural)}: restart the server to apply";
        bool repool = next.Pool != c.Pool || next.Pool6 != c.Pool6;
        if (repool && PoolConflicts(new TenantPools(next.Pool, next.Pool6)) is { } conflict) return conflict;
        PasswordFile? passwords;
        X509Certificate2Collection? cas;
        RevocationList crl;
        List<LeaseRecord> stored = [];
        try
        {
            // The sticky leases a new pool must keep for their users, read now: the commit reads no disk, so it
            // cannot fail after other tenants committed theirs (what it writes, whom the tenant trusts, it logs if refused).
            if (repool) stored = [.. _state.Leases(Name)];
            passwords = next.PasswordFile is null ? null : PasswordFile.Load(next.PasswordFile);
            cas = next.ClientCa is null ? null : PemLoader.LoadBundle(next.ClientCa);
            crl = next.ClientCrl is null ? RevocationList.Empty : RevocationList.Load(next.ClientCrl);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or System.Security.Cryptography.CryptographicException or PkiException
                                   or System.Data.Common.DbException or StateStoreException)
        {
            return $"not applied: {e.Message}";
        }
        var sites = SiteTable.Build(next, _sites);
        var trustBefore = Trust(c, ClientCas, CertificatesTrustedSince);
        var trustNext = Trust(next, cas, CertificatesTrustedSince);
        commit = () =>
        {
            if (trustBefore.NarrowedBy(trustNext))
            {
                CertificatesTrustedSince = _time.GetUtcNow();
                trustNext = trustNext with { Since = CertificatesTrustedSince };
            }
            if (!trustBefore.SameTrust(trustNext) || trustNext.Since != trustBefore.Since) RememberTrust(trustNext);
            if (repool) ApplyPools(c, next, stored);
            ApplySites(sites);
            Passwords = passwords;
            ClientCas = cas;
            RevokedCertificates = crl;
            WarnIfStale(next, crl);
            if (next.RateLimit != c.RateLimit) Relimit(next.RateLimit);
            Config = next;
        };
        return null;
    }

    /// <summary>Creates the namespace and TUN and starts one reader thread per TUN queue.</summary>
    public void Start()
    {
        IpNetwork[] pools = Pool6 is { } p6 ? [Pool, p6] : [Pool];
        _tuns = _network.Setup(Gateway, Pool.PrefixLength, Gateway6, Pool6?.PrefixLength ?? 0, pools);
        LogRouteFailures(_network.Route(_sites.Subnets, []));
        _readers = _tuns.Select((tun, i) => new TunQueueReader(tun, $"tun-{Name}-{i}", tun.Offload ? PacketBuffer.Capacity : Config.Mtu, Forward,
            error => ServerLog.TunFailed(_log, Name, tun.Name, error))).ToArray();
        foreach (var reader in _readers) reader.Start();
        _announcer = Task.Run(AnnounceLoopAsync);
    }

    /// <summary>
    /// Sticky leases: a user's last addresses are held for them across reconnects and restarts (until
    /// lease-lifetime passes), so they are handed out to others last.
    /// </summary>
    private void ReserveStoredLeases(TenantPools pools, IEnumerable<LeaseRecord> stored)
    {
        foreach (var lease in stored)
        {
            if (Expired(lease)) continue;
            foreach (var address in (ReadOnlySpan<IPAddress?>)[lease.Address, lease.Address6])
            {
                // An address a session holds now is leased already; leasing and releasing it again would free it. One
                // outside the pools (they changed) is nothing to keep: asked for, the pool would hand out another.
                if (address is null || _holders.ContainsKey(IpKey.FromAddress(address)) || !pools.Fits(address)) continue;
                var pool = pools.For(address)!;
                if (pool.Lease(OwnerKey(lease.User), address, authoritative: true) is { } leased) pool.Release(leased);
            }
        }
    }

    /// <summary>Why <paramref name="next"/> cannot replace the pools now (live leases outside it), or null.</summary>
    private string? PoolConflicts(TenantPools next)
    {
        var outside = new List<string>();
        lock (_leaseGate)
        {
            foreach (var (key, session) in _holders)
            {
                var address = key.ToAddress();
                if (!next.Fits(address)) outside.Add($"{address} ({session.User}, session {session.ShortId})");
            }
        }
        if (outside.Count == 0) return null;
        outside.Sort(StringComparer.Ordinal);
        return $"pool change refused: {outside.Count} live lease(s) fall outside the new pools: {string.Join(", ", outside.Take(10))}"
            + (outside.Count > 10 ? $" and {outside.Count - 10} more" : "")
            + "; end those sessions (isotun kick) or keep a pool that holds them";
    }

    /// <summary>
    /// A reload's new pools: every live lease moves into them (a lease made since <see cref="Prepare"/> that does not
    /// fit is left out; the server ends its session, see <see cref="HoldsAddressOutsidePools"/>), then the TUN gets the
    /// new gateway addresses and the uplink the new routes.
    /// </summary>
    private void ApplyPools(TenantConfig before, TenantConfig next, List<LeaseRecord> stored)
    {
        var pools = new TenantPools(next.Pool, next.Pool6);
        TenantPools old;
        lock (_leaseGate)
        {
            foreach (var (key, session) in _holders)
            {
                var address = key.ToAddress();
                if (pools.Fits(address)) pools.For(address)!.Lease(OwnerKey(session.User), address, authoritative: true);
            }
            ReserveStoredLeases(pools, stored);
            old = _pools;
            _pools = pools;
        }
        ServerLog.PoolChanged(_log, Name, $"{before.Pool}{(before.Pool6 is { } b6 ? " " + b6 : "")}", $"{next.Pool}{(next.Pool6 is { } n6 ? " " + n6 : "")}");
        if (_tuns.Length == 0) return;
        var failed = new List<string>();
        if (next.Pool != before.Pool) failed.AddRange(_network.Readdress(before.Pool, old.V4.Gateway, next.Pool, pools.V4.Gateway));
        if (next.Pool6 != before.Pool6) failed.AddRange(_network.Readdress(before.Pool6, old.V6?.Gateway, next.Pool6, pools.V6?.Gateway));
        foreach (var failure in failed) ServerLog.PoolReaddressFailed(_log, Name, failure);
    }

    /// <summary>True when the session holds an address its tenant's pools no longer lease (it raced a pool change).</summary>
    public bool HoldsAddressOutsidePools(TenantSession session)
    {
        var pools = _pools;
        return (session.Address is { } a && pools.V4.OwnerOf(a) is null) || (session.Address6 is { } b && pools.V6?.OwnerOf(b) is null);
    }

    /// <summary>How many addresses (IPv4 and IPv6) sessions hold now.</summary>
    internal int LeasedAddresses => _holders.Count;

    private bool Expired(LeaseRecord lease) =>
        Config.LeaseLifetime is { } life && _time.GetUtcNow() - lease.Updated > life;

    private static string OwnerKey(string user) => "u:" + user;

    /// <summary>
    /// Leases addresses for a session: the ones the client asks back (on reconnect), else the user's
    /// sticky ones, else any free ones. A user with two live sessions gets a second pair.
    /// </summary>
    /// <param name="authoritative">The address is the server's choice (the cluster bound it to the session), not one a
    /// client asked for: given when free, whoever it was sticky for.</param>
    public bool TryLease(TenantSession session, IPAddress? asked, bool authoritative = false)
    {
        if (session.HasAddresses) return true;
        var stored = _state.GetLease(Name, session.User);
        if (stored is not null && Expired(stored)) stored = null;
        lock (_leaseGate)
        {
            if (!TryLeaseLocked(session, asked, stored, authoritative)) return false;
        }
        // On a cluster node the record is what this node may fall back on while etcd is away, so it holds only the
        // user's own binding as etcd confirmed it: not a further session's (released in etcd when that session ends,
        // and then given to another user), nor a fallback's own (which would renew a time etcd never saw).
        if (Cluster is null || session.ClusterBinding == session.User) _state.SaveLease(Name, session.User, session.Address!, session.Address6);
        return true;
    }

    private bool TryLeaseLocked(TenantSession session, IPAddress? asked, LeaseRecord? stored, bool authoritative)
    {
        string owner = OwnerKey(session.User);
        var preferred = asked ?? stored?.Address;
        // The user's sticky (or asked-for) address may be held by another session of the same user.
        if (HeldByOther(preferred, session) || HeldByOther(stored?.Address6, session))
            owner = "s:" + session.Id.ToString("N");
        var pools = _pools;
        var v4 = pools.V4.Lease(owner, preferred, authoritative);
        if (v4 is null) return false;
        IPAddress? v6 = null;
        if (pools.V6 is not null)
        {
            // On a cluster node the IPv6 address follows the IPv4 one the cluster bound, so it is the same on every node.
            v6 = Cluster is not null ? pools.V6.Lease(owner, pools.Mapped6(v4), authoritative: true) : pools.V6.Lease(owner, stored?.Address6);
            if (v6 is null)
            {
                pools.V4.Release(v4);
                return false;
            }
        }
        session.Assign(v4, v6);
        _holders[session.AddressKey] = session;
        if (v6 is not null) _holders[session.AddressKey6] = session;
        return true;
    }

    /// <summary>
    /// Ends a further session's binding, unless another node serves its address now: then the session moved there (its
    /// client came back through that node) and this is the copy it left behind, ending at its cookie's expiry.
    /// </summary>
    private async Task ReleaseBindingAsync(ClusterAddresses cluster, string binding, IPAddress? address)
    {
        try
        {
            if (address is not null && await cluster.ServedElsewhereAsync(address, session: null, CancellationToken.None, readNow: true).ConfigureAwait(false)) return;
            await cluster.ReleaseAsync(binding, CancellationToken.None).ConfigureAwait(false);
        }
        catch (KeyValueStoreException e)
        {
            _log.LogWarning("tenant={Tenant} cluster: could not release the address of {Binding}: {Error}", Name, binding, e.Message);
        }
    }

    private bool HeldByOther(IPAddress? address, TenantSession session) =>
        address is not null && _holders.TryGetValue(IpKey.FromAddress(address), out var holder) && holder != session;

    public void Release(TenantSession session)
    {
        // A further session's cluster binding ends with it; a user's own stays, as their sticky address.
        if (Cluster is { } cluster && session.ClusterBinding is { } binding && binding != session.User)
            _ = ReleaseBindingAsync(cluster, binding, session.Address);
        lock (_leaseGate)
        {
            var pools = _pools;
            if (session.Address is { } a && _holders.TryRemove(new KeyValuePair<IpKey, TenantSession>(session.AddressKey, session))) pools.V4.Release(a);
            if (session.Address6 is { } b && _holders.TryRemove(new KeyValuePair<IpKey, TenantSession>(session.AddressKey6, session))) pools.V6?.Release(b);
        }
    }

    /// <summary>
    /// A new rate for the users' limiters, at once: every session that has one is shaped to it, so a user's sessions
    /// made before and after the reload still share one rate. Without a rate (0) they let everything through, and new
    /// sessions get none; sessions made while there was none get one when they log in again.
    /// </summary>
    private void Relimit(long rate)
    {
        foreach (var (rx, tx) in _limits.Values)
        {
            rx.SetRate(Math.Max(0, rate));
            tx.SetRate(Math.Max(0, rate));
        }
        if (rate <= 0) _limits.Clear();
    }

    // The stamp of a password file that could not be read, so that one bad edit is logged once, not at every look.
    private FileStamp? _passwordsRefused;
    private bool _passwordsGone; // its deletion was logged

    /// <summary>
    /// Reads the tenant's password file again if it changed since it was read (an `isotun user add` or `remove`, an
    /// edit): true when new users and hashes are in force. A file that cannot be read or parsed leaves the last good
    /// one in force, and is logged once per change. Callers hold the server's reload lock.
    /// </summary>
    internal bool RefreshPasswords()
    {
        if (Config.PasswordFile is not { } path || Passwords is not { } current) return false;
        var now = FileStamp.Of(path);
        if (now is null)
        {
            // Said once, not every 2 s; a file that comes back is read as a changed one.
            if (!_passwordsGone && !File.Exists(path)) ServerLog.PasswordsGone(_log, Name, path);
            _passwordsGone = !File.Exists(path);
            return false;
        }
        _passwordsGone = false;
        if (now == current.Stamp || now == _passwordsRefused) return false;
        try
        {
            Passwords = PasswordFile.Load(path);
            _passwordsRefused = null;
            ServerLog.PasswordsReread(_log, Name, path, Passwords.Users.Count);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            _passwordsRefused = now;
            ServerLog.PasswordsRefused(_log, Name, e.Message);
            return false;
        }
    }

    /// <summary>The user's limiters, shared by all of the user's sessions in this tenant.</summary>
    public (TokenBucket Rx, TokenBucket Tx)? LimitsFor(string user) =>
        Config.RateLimit <= 0 ? null : _limits.GetOrAdd(user, _ => (new TokenBucket(Config.RateLimit), new TokenBucket(Config.RateLimit)));

    /// <summary>
    /// Routes the session's addresses to it. An ended session (a CONNECT that raced its end) routes nothing, and no
    /// session takes over an address another live session holds: the pool gave it to that one.
    /// </summary>
    public void Attach(TenantSession session)
    {
        if (session.Ended) return;
        Route(session.AddressKey, session);
        if (session.Address6 is not null) Route(session.AddressKey6, session);
        if (Config.Uplink.ProxyArp)
        {
            if (session.Address is { } address) _announcements.Writer.TryWrite((address, true));
            if (session.Address6 is { } address6) _announcements.Writer.TryWrite((address6, true));
        }
        // The newest live session of a site's user carries the site: a site gateway that logs in again takes its
        // networks along, and its older session (waiting for a reconnect that may never come) no longer may send from
        // them; should that older one reconnect after all, it does not take them back from a newer one still up.
        lock (_siteGate)
        {
            if (_sites.OfUser(session.User) is not { } site) return;
            var before = site.Owner;
            if (before is not null && before != session && before.Connection is not null && before.Since > session.Since) return;
            if (before is not null && before != session) before.Site = null;
            site.SetOwner(session);
            session.Site = site;
            if (before != session) ServerLog.SiteRouted(_log, Name, site.Name, session.ShortId);
        }
    }

    /// <summary>The session attached at this address (whose primary connection is up), if any.</summary>
    public TenantSession? RouteTo(IpKey address) => _routes.GetValueOrDefault(address);

    private void Route(IpKey key, TenantSession session) =>
        _routes.AddOrUpdate(key, static (_, s) => s, static (_, held, s) => held == s || held.Ended ? s : held, session);

    public void Detach(TenantSession session)
    {
        if (_routes.TryRemove(new KeyValuePair<IpKey, TenantSession>(session.AddressKey, session)) && Config.Uplink.ProxyArp && session.Address is { } address)
            _announcements.Writer.TryWrite((address, false));
        if (session.Address6 is { } address6 && _routes.TryRemove(new KeyValuePair<IpKey, TenantSession>(session.AddressKey6, session)) && Config.Uplink.ProxyArp)
            _announcements.Writer.TryWrite((address6, false));
        lock (_siteGate)
        {
            if (session.Site is not { } site) return;
            session.Site = null;
            if (site.Owner != session) return;
            // The site passes to the user's other attached session, if there is one; else it waits unrouted.
            var next = AttachedSessionsOf(site.User).Where(s => s != session).MaxBy(s => s.Since);
            site.SetOwner(next);
            if (next is not null) next.Site = site;
            if (next is null) ServerLog.SiteUnrouted(_log, Name, site.Name);
            else ServerLog.SiteRouted(_log, Name, site.Name, next.ShortId);
        }
    }

    private async Task AnnounceLoopAsync()
    {
        await foreach (var (address, attached) in _announcements.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            // A later attach of the same address (a reconnect) must not be undone by an earlier detach still queued.
            if (!attached && RouteTo(IpKey.FromAddress(address)) is not null) continue;
            try
            {
                if (_network.Announce(address, attached) is { } failed) ServerLog.AnnounceFailed(_log, Name, failed);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException)
            {
                ServerLog.AnnounceFailed(_log, Name, e.Message);
            }
        }
    }

    private IEnumerable<TenantSession> AttachedSessionsOf(string user) =>
        _routes.Values.Where(s => s.User == user && s.Connection is not null).Distinct();

    /// <summary>
    /// A reload's sites: the kernel routes follow the subnets, and each site goes to its user's attached session
    /// (the one that carried it before, when it still may).
    /// </summary>
    private void ApplySites(SiteTable next)
    {
        var before = _sites;
        var oldNets = before.Subnets.ToHashSet();
        var newNets = next.Subnets.ToHashSet();
        if (_tuns.Length > 0) LogRouteFailures(_network.Route(newNets.Except(oldNets), oldNets.Except(newNets)));
        lock (_siteGate)
        {
            foreach (var site in before.Sites)
                if (site.Owner is { } owner) owner.Site = null;
            foreach (var site in next.Sites)
            {
                var keep = before.Sites.FirstOrDefault(b => b.Name == site.Name && b.User == site.User)?.Owner;
                var owner = keep is not null && keep.Connection is not null ? keep : AttachedSessionsOf(site.User).MaxBy(s => s.Since);
                site.SetOwner(owner);
                if (owner is not null) owner.Site = site;
            }
            _sites = next;
        }
    }

    private void LogRouteFailures(IReadOnlyList<string> failures)
    {
        foreach (var failure in failures) ServerLog.SiteRouteFailed(_log, Name, failure);
    }

    /// <summary>Is this destination another client of this tenant (not the gateway)? No allocation: compares keys.</summary>
    public bool IsClientAddress(IpKey destination) => _pools.IsClientAddress(destination);

    // TUN → sessions: a TunQueueReader per TUN queue (its thread, and connections right after their writes) hands each
    // packet to Forward: a routing lookup per packet, and for a session with several queues the connection its flow
    // hashes to.

    /// <summary>Each TUN queue reader's busy and running time, for the queue-utilization metrics.</summary>
    public IEnumerable<ReaderSample> ReaderSamples()
    {
        var readers = _readers;
        for (int q = 0; q < readers.Length; q++)
            if (readers[q].Sample() is var (busy, running))
                yield return new ReaderSample(Name, q, busy, running);
    }

    /// <summary>
    /// A connection on queue <paramref name="queue"/> has just written packets into the TUN: what they caused and the
    /// queue already holds (a ping's reply) goes out from the connection's thread when the queue's reader is waiting.
    /// </summary>
    public void ServeAfterWrite(int queue)
    {
        var readers = _readers;
        if (readers.Length > 0) readers[queue % readers.Length].ServeAfterWrite();
    }

    /// <summary>
    /// See <see cref="TunQueueReader.HoldWakeups"/>: for a connection on queue <paramref name="queue"/> about to write
    /// after a quiet spell. The reader whose wake-ups are held, to release them on; null when none were.
    /// </summary>
    internal TunQueueReader? HoldWakeups(int queue)
    {
        var readers = _readers;
        if (readers.Length == 0) return null;
        var reader = readers[queue % readers.Length];
        return reader.HoldWakeups() ? reader : null;
    }

    /// <summary>Packets of this tenant's TUN queues that connections read right after their writes.</summary>
    internal long ServedAfterWrite => _readers.Sum(r => r.ServedAfterWrite);

    /// <summary>
    /// One packet read from a TUN queue, at <see cref="CstpFrame.HeaderLength"/> in <paramref name="buf"/>: to the
    /// connection of the session (or site) it is addressed to, or counted as a drop. True when the connection's queue
    /// took the buffer.
    /// </summary>
    private bool Forward(ITunQueue tun, PacketBuffer buf, int n)
    {
        var metrics = Metrics;
        int skip = tun.Offload ? VirtioNetHeader.Length : 0;
        var packet = buf.PayloadSpace[skip..n];
        if (IpPacket.TryParse(packet, out var info) != IpParseResult.Ok)
        {
            metrics.Drop(Name, DropReason.Malformed);
            return false;
        }
        var dst = IpKey.FromBytes(IpPacket.Destination(packet, info));
        var session = RouteTo(dst);
        Site? site = null;
        if (session is null && !_sites.IsEmpty)
        {
            site = _sites.Match(dst);
            session = site?.Owner;
        }
        if (session?.Pick(packet, info) is not { } conn)
        {
            metrics.Drop(Name, DropReason.NoSession);
            return false;
        }
        if (!tun.Offload && n > conn.Mtu)
        {
            metrics.Drop(Name, DropReason.Oversize);
            return false;
        }
        var result = TunFrames.Send(buf, n, tun.Offload, conn.PeerGso, conn.PeerUso, conn.Mtu, conn.Offer, out bool consumed);
        if (result.Malformed) metrics.Drop(Name, DropReason.Malformed);
        if (result.Oversize > 0) metrics.Drop(Name, DropReason.Oversize, result.Oversize);
        if (result.QueueFull > 0) metrics.Drop(Name, DropReason.QueueFull, result.QueueFull);
        // The connection picked was closing (it stays routed until its writer has drained): as good as no session.
        if (result.Closed > 0) metrics.Drop(Name, DropReason.NoSession, result.Closed);
        if (result.OverBudget > 0) metrics.Drop(Name, DropReason.OverBudget, result.OverBudget);
        if (result.Queued > 0)
        {
            Traffic.Tx(n - skip, conn.Queue);
            site?.CountTx(n - skip);
        }
        return consumed;
    }

    public void Dispose()
    {
        _announcements.Writer.TryComplete();
        _announcer.Wait(TimeSpan.FromSeconds(2));
        foreach (var reader in _readers) reader.Stop(TimeSpan.FromSeconds(2));
        foreach (var tun in _tuns) tun.Dispose();
        _network.Teardown();
    }
}
