using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Config;
using Isotun.Linux;
using Isotun.Logs;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Protocol.Cookies;
using Isotun.Security;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.State.Cluster;
using Isotun.Transport;
using Isotun.Transport.Listening;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// The VPN concentrator: a TLS listener speaking OpenConnect's CSTP, one <see cref="TenantRuntime"/> per
/// tenant, a session registry, the state store and the metrics endpoint.
/// </summary>
public sealed class VpnServer : IAsyncDisposable, IConnectionHost
{
    private readonly ILogger _log;
    // Copy-on-write: a reload that adds or removes tenants swaps in a new dictionary (the Authenticator gets it too).
    private Dictionary<string, TenantRuntime> _tenants = new(StringComparer.Ordinal);
    private readonly Func<TenantConfig, ITenantNetwork>? _networks;
    private readonly TimeProvider _time;
    private volatile bool _started;
    private bool _disposing; // under _reloadLock
    private Socket[] _listeners = [];
    private long _nextConnection;
    private readonly ConcurrencyCaps _caps;
    private readonly Lock _reloadLock = new();
    private readonly ServiceNotifier _notify = new(); // READY, RELOADING, STOPPING for systemd
    private readonly IDisposable _limitsWatch;
    private readonly IDisposable _queuesWatch;
    private readonly IDisposable _sitesWatch;
    private readonly IDisposable? _clusterWatch;

    /// <param name="networks">Makes each tenant's network: its namespace and TUN by default, memory TUNs in tests.</param>
    /// <param name="shared">
    /// The cluster's shared state when this server is a node of one: the cookie key, revoked users and revoked cookies
    /// then come from it instead of the local files.
    /// </param>
    public VpnServer(ServerConfig config, ILoggerFactory logs, IStateStore? state = null, TimeProvider? time = null, Func<TenantConfig, ITenantNetwork>? networks = null,
        SharedState? shared = null)
    {
        Metrics = new IsotunMetrics();
        Shared = shared;
        if (config.Cluster is { ShareTenants: true })
        {
            // One read of the published tenants, so the revision said to run is the one whose tenants run.
            var (tenants, revision) = SharedTenantsAtStart(config, shared);
            config = config with { Tenants = tenants };
            _sharedTenants = new SharedTenantsView(revision, revision, null);
        }
        Config = config;
        _log = logs.CreateLogger("isotun.server");
        _caps = new ConcurrencyCaps(config.Limits.MaxConnections, config.Limits.PerSourceConnections);
        var t = time ?? TimeProvider.System;
        _time = t;
        _networks = networks;
        LogThrottle = new LogThrottle(time: t);
        LoadRevokedUsers();
        Logins = new LoginThrottle(t);
        Logins.Configure(config.Limits.LoginBanAfter, config.Limits.LoginSourceBanAfter, config.Limits.LoginFailureWindow, config.Limits.LoginBanTime);
        var local = state ?? new SqliteStateStore(config.StatePath, t);
        State = shared is null ? local : new SharedStateStore(local, shared);
        Cookies = new CookieSealer(shared?.CookieKeys ?? CookieKeyFile.LoadOrCreate(config.Cookie.KeyFile, t.GetUtcNow()), t);
        Sessions = new SessionRegistry(State, t, config.Cookie.Lifetime, _log, () => Config.Limits.SessionMemory);
        if (shared is not null)
        {
            shared.Changed = OnSharedChange;
            // Login bans hold on every node: the ones the cluster has now, and each made or lifted on any node.
            foreach (var (scope, key, until) in shared.LoginBans) Logins.Apply(scope, key, until);
            Logins.BanStarted = shared.BanLogin;
            Logins.BanLifted = shared.LiftLoginBan;
            // Failed logins count across the nodes: a guesser spread over them gets no more tries than on one.
            Logins.FailuresElsewhere = shared.LoginFailuresElsewhere;
            Logins.FailuresCounted = shared.CountLoginFailures;
        }

        var (cert, certPath) = LoadServerCertificate(config);
        // After the certificate is made, on a first start without one.
        var certificateFiles = FilesDigest(config.Tls.Certificate, config.Tls.Key);
        _clientCaFile = FilesDigest(config.Tls.ClientCa);
        ServerLog.ServerCertificate(_log, certPath, CertificatePin.Compute(cert));
        _serverCas = config.Tls.ClientCa is { } ca ? PemLoader.LoadBundle(ca) : null;
        foreach (var tc in config.Tenants) _tenants[tc.Name] = MakeTenant(tc);
        Authenticator = new Authenticator(_tenants, _serverCas);
        ShareCertificateRevocations();
        _limitsWatch = Metrics.WatchSessionLimits(ReadSessionLimits);
        _queuesWatch = Metrics.WatchQueues(ReadQueues);
        _clusterWatch = shared is null ? null : Metrics.WatchCluster(() =>
        {
            var c = shared.Status;
            return new ClusterSample(c.Node, c.Connected, c.PendingWrites, SharedTenantsStatus is { Stale: true }, c.DroppedWrites);
        });
        _sitesWatch = Metrics.WatchSites(() =>
            _tenants.Values.SelectMany(t => t.Sites.Sites.Select(s => new SiteSample(t.Name, s.Name, s.RxBytes, s.TxBytes))).ToList());
        _tls = new ServerTls(cert, MakeTlsOptions(cert, config.Tls.Certificate), certificateFiles);
        _certificateWatch = Metrics.WatchCertificate(() => new DateTimeOffset(ServerCertificate.NotAfter.ToUniversalTime()));
        WarnIfExpiring(cert, config.Tls.Certificate);
        _ticketKey = config.Tls.TicketKeyFile is { } ticketKeyFile ? TicketKeyFile.LoadOrCreate(ticketKeyFile) : null;
        // Tenants published while this server was being made are applied now that it is whole.
        _built = true;
        if (_sharedTenants is { } view && shared?.Tenants?.Revision > view.Applied) ThreadPool.QueueUserWorkItem(_ => ApplySharedTenants());
        if (Interlocked.Exchange(ref _reshareWanted, 0) == 1) ReshareSoon(); // a lift heard while this server was being made
    }

    private volatile bool _built;

    // tls.client-ca, read at start (a change needs a restart): the CAs of every tenant without its own.
    private readonly X509Certificate2Collection? _serverCas;

    /// <summary>
    /// The certificate the server presents and the options new handshakes use, with a digest of the certificate and
    /// key files they came from; replaced whole when a reload finds those files renewed (handshakes under way finish
    /// with the one they began with).
    /// </summary>
    private sealed record ServerTls(X509Certificate2 Certificate, SslServerAuthenticationOptions Options, string? Files);

    private volatile ServerTls _tls;
    private readonly IDisposable _certificateWatch;

    private void WarnIfExpiring(X509Certificate2 cert, string path)
    {
        if (CertificateValidity.DateProblem(cert, _time.GetUtcNow()) is { } problem) ServerLog.CertificateValidity(_log, path, problem);
    }

    private SslServerAuthenticationOptions MakeTlsOptions(X509Certificate2 cert, string certPath) => new()
    {
        ServerCertificateContext = PemLoader.ServerContext(cert, certPath),
        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateRequired = Authenticator.CertificateAuthEnabled,
        // The client CA is checked by the authenticator, so a client without a certificate can still use a password.
        RemoteCertificateValidationCallback = static (_, _, _, _) => true,
        CertificateChainPolicy = ClientCertificateCheck.HandshakePolicy(),
        AllowRenegotiation = false,
    };

    /// <summary>The live config: replaced by <see cref="Reload"/> when a new file validates.</summary>
    public ServerConfig Config { get; private set; }
    public IStateStore State { get; }
    public CookieSealer Cookies { get; }
    public SessionRegistry Sessions { get; }

    /// <summary>This server's instruments (its admin API exports them); its tenants, connections and listeners count in them.</summary>
    public IsotunMetrics Metrics { get; }
    public Authenticator Authenticator { get; }
    public SslServerAuthenticationOptions TlsOptions => _tls.Options;
    public X509Certificate2 ServerCertificate => _tls.Certificate;
    public IPEndPoint? LocalEndpoint => _listeners.FirstOrDefault()?.LocalEndPoint as IPEndPoint;

    /// <summary>Keeps floods of close and refusal lines (both listeners) out of the Information log.</summary>
    internal LogThrottle LogThrottle { get; }
    LogThrottle IConnectionHost.LogThrottle => LogThrottle;

    // Users an operator revoked, "tenant/user": refused at login and at CONNECT until enabled again. Kept in a file
    // next to the state, so a revocation outlives a restart.
    private readonly ConcurrentDictionary<string, byte> _revokedUsers = new(StringComparer.Ordinal);
    // Users enabled again, and when: the cookies they held from before stay refused. Kept in the same file, for as long
    // as such a cookie can live.
    private readonly ConcurrentDictionary<string, DateTimeOffset> _enabledSince = new(StringComparer.Ordinal);
    private readonly Lock _revokedLock = new();

    // What tls.client-ca held when the server started: it is read only then, so a reload that finds it changed says so
    // instead of reporting the rest applied.
    private readonly string? _clientCaFile;

    /// <summary>A digest of the files' contents; null when one cannot be read.</summary>
    private static string? FilesDigest(params string?[] files)
    {
        try
        {
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            foreach (var file in files)
            {
                if (file is null || !File.Exists(file)) { sha.AppendData([0]); continue; }
                sha.AppendData(File.ReadAllBytes(file));
                sha.AppendData([1]);
            }
            return Convert.ToHexString(sha.GetHashAndReset());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private string RevokedUsersPath => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(Config.StatePath)) ?? ".", "revoked-users");

    public bool IsRevoked(string tenant, string user) => Shared?.IsUserRevoked(tenant, user) ?? _revokedUsers.ContainsKey($"{tenant}/{user}");

    public IReadOnlyList<string> RevokedUsers => Shared?.RevokedUsers ?? [.. _revokedUsers.Keys.Order(StringComparer.Ordinal)];

    /// <summary>When a revoked user was enabled again, if they were (and a cookie from before could still live).</summary>
    private DateTimeOffset? EnabledSince(string tenant, string user) =>
        Shared is { } shared ? shared.EnabledSince(tenant, user) : _enabledSince.TryGetValue($"{tenant}/{user}", out var since) ? since : null;

    /// <summary>The cluster's shared state, when this server is a node of one.</summary>
    public SharedState? Shared { get; }

    /// <summary>
    /// Another node revoked a user or a cookie (the sessions concerned end here too), banned or unbanned a login, or
    /// rotated the cookie keys.
    /// </summary>
    private void OnSharedChange(SharedChange change)
    {
        switch (change)
        {
            case SharedChange.LoginBanned b:
                Logins.Apply(b.Scope, b.Key, b.Until);
                return;
            case SharedChange.LoginBanLifted l:
                Logins.Lift(l.Scope, l.Key);
                return;
            case SharedChange.TenantsPublished:
                // Off the watch's thread: applying tenants may set up namespaces, and revocations must not wait for it.
                if (_built) ThreadPool.QueueUserWorkItem(_ => ApplySharedTenants());
                return;
            case SharedChange.CertificateRevocationLifted:
                ReshareSoon();
                return;
            case SharedChange.CookieKeysRotated:
                Cookies.Use(Shared!.CookieKeys);
                _log.LogInformation("cluster: the cookie keys were rotated: key {Id} seals from {Start:O}", Shared.CookieKeys.Current.Id, Shared.CookieKeys.Current.Created);
                return;
        }
        int ended = change switch
        {
            SharedChange.UserRevoked u => Sessions.KickWhere(s => s.Tenant.Name == u.Tenant && s.User == u.User ? "user revoked on another node" : null),
            SharedChange.UserEnabled u => Sessions.KickWhere(s => s.Tenant.Name == u.Tenant && s.User == u.User && s.Since < u.Since
                ? "user revoked on another node (and enabled again since)" : null),
            SharedChange.SessionRevoked r => Sessions.KickWhere(s => s.Id == r.Session ? "cookie revoked on another node" : null),
            SharedChange.CertificateRevoked c => Sessions.KickWhere(s => s.Tenant.Name == c.Tenant && s.Credential == CredentialStamp.ForCertificate(c.Serial)
                ? "certificate revoked by another node's CRL" : null),
            _ => 0,
        };
        if (ended > 0) _log.LogWarning("cluster: {Change}: {Sessions} session(s) ended here", change, ended);
    }

    // With cluster.share-tenants: the revision of the tenants running here, and why a newer one is not; null otherwise.
    private SharedTenantsView? _sharedTenants;

    /// <summary>With <c>cluster.share-tenants</c>: the tenants published in the cluster, read against this node's files, and their revision; the start fails without them.</summary>
    private static (IReadOnlyList<TenantConfig> Tenants, long Revision) SharedTenantsAtStart(ServerConfig config, SharedState? shared)
    {
        if (shared?.Tenants is not { } published)
            throw new InvalidOperationException("cluster.share-tenants is on, and no tenants were published in the cluster yet: publish them with `isotun cluster push-tenants FILE`");
        var read = ServerConfigLoader.ParseTenants(published.Yaml, config.SourcePath);
        if (!read.Ok)
            throw new InvalidOperationException($"the tenants published in the cluster (revision {published.Revision}) do not hold on this node: "
                + string.Join("; ", read.Errors.Select(e => $"{e.Path}: {e.Message}")));
        return (read.Tenants!, published.Revision);
    }

    /// <summary>
    /// With <c>cluster.share-tenants</c>: the revision of the tenants published in the cluster, the one this node runs,
    /// and why it does not run a newer one (its errors, or what a reload refused). Null on a node that reads its tenants
    /// from its file.
    /// </summary>
    public SharedTenantsView? SharedTenantsStatus => _sharedTenants is { } view && Shared?.Tenants is { } published
        ? view with { Published = Math.Max(view.Published, published.Revision) }
        : _sharedTenants;

    /// <summary>
    /// Applies the tenants published in the cluster, as a reload applies a file's: whole or not at all, every reason
    /// listed. A document that does not hold here (a file it names is missing on this node) or a change that cannot be
    /// applied live leaves the running tenants as they are, and the status says so until a later publish applies.
    /// </summary>
    public IReadOnlyList<string> ApplySharedTenants()
    {
        lock (_reloadLock)
        {
            if (_disposing || Shared?.Tenants is not { } published || Config.Cluster is not { ShareTenants: true }) return [];
            if (_sharedTenants is { } known && known.Applied >= published.Revision) return [];
            // Before the listener is open, READY=1 would tell systemd the server is up when it is not.
            bool listening = _listeners.Length > 0;
            if (listening) _notify.Reloading();
            List<string> report;
            bool applied = false;
            // Runs on a pool thread of its own: nothing the document meets (a file this node cannot read, say) may escape.
            try
            {
                var read = ServerConfigLoader.ParseTenants(published.Yaml, Config.SourcePath);
                if (!read.Ok)
                {
                    report = [$"cluster tenants of revision {published.Revision} refused, {read.Errors.Count} error(s) on this node; the running tenants stay:"];
                    report.AddRange(read.Errors.Select(e => $"  {e.Path}: {e.Message}"));
                    foreach (var line in report) _log.LogError("{Line}", line);
                }
                else
                {
                    report = ApplyLocked(Config with { Tenants = read.Tenants! }, $"cluster tenants of revision {published.Revision}", out applied);
                }
            }
            catch (Exception e)
            {
                report = [$"cluster tenants of revision {published.Revision} failed, the running tenants stay: {e.Message}"];
                _log.LogError(e, "cluster tenants of revision {Revision} failed; the running tenants stay", published.Revision);
            }
            _sharedTenants = applied
                ? new SharedTenantsView(published.Revision, published.Revision, null)
                : _sharedTenants! with { Published = published.Revision, Error = string.Join("\n", report) };
            if (listening) _notify.Ready($"cluster tenants of revision {published.Revision}: {(applied ? "applied" : "refused")}");
            return report;
        }
    }

    /// <summary>
    /// Whether a cookie's user may still connect: not revoked, and for a password login, still in the tenant's password
    /// file with the same password (the stored hash's fingerprint is in the cookie); for a certificate login, not
    /// revoked, and logged in (<paramref name="loggedIn"/>) after the tenant last narrowed whom it trusts.
    /// </summary>
    public bool CredentialStillValid(TenantRuntime tenant, string user, ulong credential, DateTimeOffset loggedIn)
    {
        if (IsRevoked(tenant.Name, user)) return false;
        if (EnabledSince(tenant.Name, user) is { } enabled && loggedIn < enabled) return false; // a cookie from before the revocation
        if (credential == 0) return true;
        if (CredentialStamp.IsCertificate(credential))
            return !tenant.IsCertificateStampRevoked(credential) && loggedIn >= tenant.CertificatesTrustedSince;
        return tenant.Passwords?.TryGetHash(user, out var hash) == true && CredentialStamp.ForPassword(hash) == credential;
    }

    /// <summary>
    /// Whether a cookie ends no later than one issued now would (give or take <see cref="CookieConfig.ClockSkew"/>). A cookie
    /// issued before <c>cookie.lifetime</c> was cut (in an incident, say) would otherwise keep its longer life, and the
    /// login time worked out from the shorter one would read later than it was, past a narrowing of trust.
    /// </summary>
    public bool WithinCookieLifetime(SessionTicket ticket) => ticket.ExpiresAt <= Config.Cookie.LatestEnd(_time.GetUtcNow());

    /// <summary>
    /// Revokes a user: every session of theirs ends at once and their cookies die, until <see cref="EnableUser"/>.
    /// The revocation holds in memory and the sessions end even when saving it fails; then it throws
    /// <see cref="IOException"/> saying so (it does not outlive a restart).
    /// </summary>
    public int RevokeUser(string tenant, string user)
    {
        Exception? unsaved = null;
        if (Shared is not null) Shared.RevokeUser(tenant, user);
        else lock (_revokedLock)
        {
            _revokedUsers[$"{tenant}/{user}"] = 0;
            _enabledSince.TryRemove($"{tenant}/{user}", out _);
            unsaved = TrySaveRevokedUsers();
        }
        int ended = Sessions.KickWhere(s => s.Tenant.Name == tenant && s.User == user ? "user revoked by the operator" : null);
        _log.LogWarning("tenant={Tenant} user {User} revoked: {Sessions} session(s) ended", tenant, user, ended);
        if (unsaved is not null)
        {
            _log.LogError("tenant={Tenant} user {User}: the revocation holds until a restart only: {Path} could not be written ({Error})", tenant, user, RevokedUsersPath, unsaved.Message);
            throw new IOException($"revoked and {ended} session(s) ended, but {RevokedUsersPath} could not be written ({unsaved.Message}): the revocation does not outlive a restart", unsaved);
        }
        return ended;
    }

    /// <summary>
    /// Lifts a revocation from now on: the user may log in again, but the cookies they held before stay refused (a
    /// revocation ends only the sessions it finds; a cookie held by a laptop asleep, or stolen, would otherwise work
    /// again). False when the user was not revoked.
    /// </summary>
    public bool EnableUser(string tenant, string user)
    {
        if (Shared is not null)
        {
            if (!Shared.EnableUser(tenant, user)) return false;
        }
        else lock (_revokedLock)
        {
            if (!_revokedUsers.TryRemove($"{tenant}/{user}", out _)) return false;
            _enabledSince[$"{tenant}/{user}"] = UnixSeconds.Whole(_time.GetUtcNow()); // as the file keeps it
            if (TrySaveRevokedUsers() is { } unsaved)
                throw new IOException($"enabled, but {RevokedUsersPath} could not be written ({unsaved.Message}): after a restart the user is revoked again", unsaved);
        }
        _log.LogInformation("tenant={Tenant} user {User} enabled again", tenant, user);
        return true;
    }

    /// <summary>A tenant's runtime; on a cluster node, its IPv4 addresses come from the cluster's address blocks.</summary>
    private TenantRuntime MakeTenant(TenantConfig tc)
    {
        var tenant = new TenantRuntime(tc, State, _log, _time, _networks?.Invoke(tc), Metrics, _serverCas);
        if (Shared is not null)
        {
            tenant.Cluster = new ClusterAddresses(Shared, tc.Name, tenant.Pool, _log)
            {
                BindingTtl = () => Config.Cluster?.BindingTtl ?? TimeSpan.FromDays(ClusterConfig.DefaultBindingTtlDays),
            };
            tenant.SharedRevocations = Shared;
        }
        return tenant;
    }

    private static bool SameCluster(ClusterConfig? a, ClusterConfig? b) =>
        a is null ? b is null : b is not null && a.Node == b.Node && a.Prefix == b.Prefix && a.Etcd.SequenceEqual(b.Etcd) && a.Tls == b.Tls
            && a.ShareTenants == b.ShareTenants && a.Auth == b.Auth;

    /// <summary>The tenants now (a reload may add or remove some).</summary>
    public IReadOnlyCollection<TenantRuntime> TenantRuntimes => _tenants.Values;

    /// <summary>Kicks one session: it ends, its connections close and its cookie is refused from now on.</summary>
    public bool Kick(Guid session)
    {
        if (Sessions.TryGet(session) is not { } s) return false;
        Sessions.Kick(s, "kicked by the operator");
        return true;
    }

    private void LoadRevokedUsers()
    {
        if (!File.Exists(RevokedUsersPath)) return;
        foreach (var line in File.ReadAllLines(RevokedUsersPath))
        {
            if (line.Trim() is not { Length: > 0 } entry || entry.StartsWith('#')) continue;
            // "tenant/user": revoked; "tenant/user enabled UNIXTIME": enabled again then.
            if (entry.Split(' ') is [var who, "enabled", var at] && UnixSeconds.Parse(at) is { } since) _enabledSince[who] = since;
            else _revokedUsers[entry] = 0;
        }
    }

    /// <summary>Writes the revoked users beside the state file; the error when the disk refused.</summary>
    private Exception? TrySaveRevokedUsers()
    {
        try
        {
            // An enabling is kept while a cookie from before it can live; past that it says nothing.
            var since = Config.Cookie.NoneValidFromBefore(_time.GetUtcNow());
            foreach (var (who, at) in _enabledSince)
                if (at < since) _enabledSince.TryRemove(who, out _);
            AtomicFile.Write(RevokedUsersPath, System.Text.Encoding.UTF8.GetBytes("# tenant/user, revoked by an operator; `isotun revoke --enable` lifts it\n"
                + "# tenant/user enabled UNIXTIME: enabled again then, and the cookies from before still refused\n"
                + string.Concat(_revokedUsers.Keys.Order(StringComparer.Ordinal).Select(k => k + "\n"))
                + string.Concat(_enabledSince.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key} enabled {e.Value.ToUnixTimeSeconds()}\n"))), overwrite: true,
                UnixFileMode.UserRead | UnixFileMode.UserWrite);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e;
        }
    }

    // 1 while a reshare is wanted and not yet run (lifts come in bursts: thousands are one pass).
    private int _reshareWanted;

    /// <summary>
    /// Another node took back a revocation it shared: shared again from here if this node's CRL lists it. Off the
    /// watch's thread and under the reload lock, once for a burst of lifts; wanted before the server is whole, run then.
    /// </summary>
    private void ReshareSoon()
    {
        if (Interlocked.Exchange(ref _reshareWanted, 1) == 1 || !_built) return;
        ThreadPool.QueueUserWorkItem(_ =>
        {
            lock (_reloadLock)
            {
                Volatile.Write(ref _reshareWanted, 0);
                if (_disposing) return;
                try
                {
                    ShareCertificateRevocations();
                }
                catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
                {
                    _log.LogWarning("cluster: the certificate revocations could not be shared again ({Error})", e.Message);
                }
            }
        });
    }

    /// <summary>On a cluster node: shares what this node's CRLs revoke, so every node refuses those certificates at once (call under the reload lock).</summary>
    private void ShareCertificateRevocations() =>
        Shared?.ShareCertificateRevocations(_tenants.Values.ToDictionary(t => t.Name, t => t.RevokedCertificates.Serials, StringComparer.Ordinal));

    /// <summary>After a reload: sessions whose user was removed from the password file, given a new password, or whose certificate was revoked, end.</summary>
    private int EndSessionsWithStaleCredentials() => Sessions.KickWhere(s =>
        s.Credential == 0 || CredentialStillValid(s.Tenant, s.User, s.Credential, s.Since) ? null
        : CredentialStamp.IsCertificate(s.Credential) ? "the certificate was revoked, or its tenant no longer trusts it as it did" : "the user was removed or given a new password");

    /// <summary>Failed logins per source and per user, and the bans they lead to.</summary>
    public LoginThrottle Logins { get; }

    /// <summary>The key of <c>tls.ticket-key-file</c>, or null: tickets sealed with a key of this run only.</summary>
    private readonly byte[]? _ticketKey;

    /// <summary>The ticket key the server's TLS seals tickets with (the file's or the cluster's), once set: a renewed
    /// certificate's TLS context is given it too, so tickets from before the renewal still resume.</summary>
    private byte[]? _ticketKeyInUse;

    /// <summary>With <c>tls.ticket-key-file</c>, or in a cluster (whose nodes share a key in the store unless the file
    /// is set), seals session tickets with that key from the first client on (run before the listener opens).</summary>
    internal async Task UseTicketKeyAsync(CancellationToken stopping)
    {
        var (key, source) = (_ticketKey, Config.Tls.TicketKeyFile);
        try
        {
            if (key is null && Shared is { } shared)
                (key, source) = (await shared.TicketKeyAsync(NativeTls.TicketKeyLength, stopping).ConfigureAwait(false), "the cluster store");
            if (key is null || source is null) return;
            if (await NativeTls.PrimeTicketKeyAsync(TlsOptions, key, cancel: stopping).ConfigureAwait(false))
            {
                _ticketKeyInUse = key;
                ServerLog.TicketKey(_log, source);
            }
            else ServerLog.TicketKeyNotUsed(_log, source, "this runtime's TLS gives no way to set it");
        }
        catch (Exception e) when (e is AuthenticationException or IOException or SocketException or KeyValueStoreException or InvalidDataException or InvalidOperationException)
        {
            ServerLog.TicketKeyNotUsed(_log, source ?? "the cluster store", e.Message);
        }
    }

    /// <summary>Bounds how many logins are decided (passwords hashed) at once.</summary>
    public LoginGate LoginGate { get; } = new(LoginGate.DefaultConcurrency, LoginGate.DefaultQueue);

    public async Task RunAsync(CancellationToken stopping)
    {
        await UseTicketKeyAsync(stopping).ConfigureAwait(false);
        // Under the reload lock: a reload that comes meanwhile either adds its tenants before this starts them all, or
        // starts them itself once the others are (a tenant added between the two was never started).
        lock (_reloadLock)
        {
            foreach (var t in _tenants.Values) t.Start();
            _started = true;
        }
        // Both listeners are bound before either accepts: a port that cannot be had fails the start, with its address.
        var proxyListener = Config.Proxy is { } pc ? new ProxyListener(this, pc, _log) : null;
        proxyListener?.Open();
        try
        {
            _listeners = ListeningSockets.Open("TLS listener", Config.Listen, 512);
        }
        catch
        {
            proxyListener?.Close();
            throw;
        }
        ServerLog.Listening(_log, Config.Listen, string.Join(", ", _tenants.Keys));
        // systemd (Type=notify) counts the service as started from here; a no-op without $NOTIFY_SOCKET.
        _notify.Ready($"listening on {Config.Listen}; tenants: {string.Join(", ", _tenants.Keys)}");

        var reaper = ReapLoopAsync(stopping);
        var rotator = CookieKeyLoopAsync(stopping);
        var passwords = PasswordFileLoopAsync(stopping);
        var publisher = Shared is null ? Task.CompletedTask : Task.Run(() => new ClusterSessions(this, Shared, _log).RunAsync(stopping), CancellationToken.None);
        var proxy = proxyListener is null ? Task.CompletedTask : Task.Run(() => proxyListener.RunAsync(stopping), CancellationToken.None);
        var listener = new ConnectionListener(_listeners, _caps, new ServerListenerEvents(ListenerName.Tls, Metrics, _log), NextConnectionId);
        using (stopping.Register(() =>
        {
            _notify.Stopping();
            ServerLog.Stopping(_log, Sessions.All.Count(s => s.Connection is not null), (int)Config.Limits.DrainTime.TotalSeconds);
        }))
            // A connection starts on the accepting thread (one listening socket per core): when its ClientHello is
            // already there, the handshake's first flight is made without a hand-off to the pool.
            await listener.RunAsync((c, ct) => RunConnectionAsync(c.Socket, c.Id, ct), () => Config.Limits.DrainTime, stopping, startOnAcceptThread: true).ConfigureAwait(false);
        try { await reaper.ConfigureAwait(false); } catch (OperationCanceledException) { }
        try { await rotator.ConfigureAwait(false); } catch (OperationCanceledException) { }
        try { await passwords.ConfigureAwait(false); } catch (OperationCanceledException) { }
        try { await proxy.ConfigureAwait(false); } catch (OperationCanceledException) { }
        await publisher.ConfigureAwait(false);
    }

    /// <summary>
    /// Kicks a session wherever it is: here at once, on another node of the cluster by revoking its cookie everywhere
    /// (its node ends it when it hears). False when it is not here and this server is not a node of a cluster.
    /// </summary>
    public bool KickEverywhere(Guid session)
    {
        if (Kick(session)) return true;
        if (Shared is null) return false;
        Shared.RevokeSession(session, DateTimeOffset.UtcNow + Config.Cookie.Lifetime);
        _log.LogWarning("session {Session} kicked through the cluster: its cookie is revoked on every node", session.ToString("N")[..8]);
        return true;
    }

    /// <summary>The caps on open connections (global and per source), shared by the TLS and the PROXY listener.</summary>
    public ConcurrencyCaps Caps => _caps;

    /// <summary>A fresh connection id, shared by the TLS and the PROXY listener so logs never reuse one.</summary>
    public long NextConnectionId() => Interlocked.Increment(ref _nextConnection);

    /// <summary>
    /// SIGHUP: reads the config file again and applies it whole or not at all. A file with errors, or with a change
    /// that cannot be applied to a running server (listener, TLS, state, cookie, proxy, cluster, or a tenant's
    /// namespace, device, MTU, uplink, offload or queues, or a pool that a live lease does not fit in), is refused with
    /// every reason listed, and the running config stays. Otherwise tenants are added and removed, and every tenant's
    /// new users, CAs, limits, routes, DNS, timers and pools apply at once. Only the sessions of removed tenants, users
    /// and certificates end. Reloads run one at a time, and nothing a reload meets ends the process.
    /// </summary>
    public IReadOnlyList<string> Reload()
    {
        lock (_reloadLock)
        {
            if (_disposing) return ["reload refused: the server is stopping; nothing applied"];
            // systemd shows the unit as reloading until READY=1 comes again, whether the new file was taken or refused.
            // Before the listener is open, READY=1 would tell systemd the server is up when it is not.
            bool listening = _listeners.Length > 0;
            if (listening) _notify.Reloading();
            List<string> report;
            try
            {
                report = ReloadLocked();
            }
            catch (Exception e)
            {
                report = [$"reload failed, the running config stays: {e.Message}"];
                _log.LogError(e, "reload failed; the running config stays");
            }
            if (listening) _notify.Ready(ReloadStatus(report));
            return report;
        }
    }

    /// <summary>
    /// The status line systemd shows after a reload: the report's first three lines, each trimmed, a heading (ending
    /// in a colon) joined to the line under it by a space, the others by "; ".
    /// </summary>
    internal static string ReloadStatus(IReadOnlyList<string> report)
    {
        if (report.Count == 0) return "reload: nothing to apply";
        var status = new System.Text.StringBuilder("reload: ");
        foreach (var line in report.Take(3).Select(l => l.Trim()))
        {
            if (status.Length > "reload: ".Length) status.Append(status[^1] == ':' ? " " : "; ");
            status.Append(line);
        }
        return status.ToString();
    }

    private List<string> ReloadLocked()
    {
        var loaded = ServerConfigLoader.Load(Config.SourcePath);
        if (!loaded.Ok)
        {
            List<string> report = [$"reload refused, {loaded.Errors.Count} error(s); the running config stays:"];
            report.AddRange(loaded.Errors.Select(e => $"  {e.Path}: {e.Message}"));
            foreach (var line in report) _log.LogError("{Line}", line);
            return report;
        }
        var next = loaded.Config!;
        // Tenants shared through the cluster are not in the file: the ones running stay (a publish changes them).
        if (next.Cluster is { ShareTenants: true } && Config.Cluster is { ShareTenants: true }) next = next with { Tenants = Config.Tenants };
        var renewal = RenewedTls(next.Tls);
        return ApplyLocked(next, "reload", out _, renewal, clientCaChanged: FilesDigest(next.Tls.ClientCa) != _clientCaFile);
    }

    /// <summary>
    /// When the certificate or key file holds something new (a renewal): the new certificate's TLS, its ticket key set,
    /// or why it cannot be used. Nothing when the files are as they were.
    /// </summary>
    private (ServerTls? Tls, string? Problem) RenewedTls(TlsConfig tls)
    {
        var files = FilesDigest(tls.Certificate, tls.Key);
        if (files is not null && files == _tls.Files) return (null, null);
        X509Certificate2 cert;
        SslServerAuthenticationOptions options;
        try
        {
            cert = PemLoader.LoadCertificateWithKey(tls.Certificate, tls.Key);
            options = MakeTlsOptions(cert, tls.Certificate);
        }
        catch (PkiException e)
        {
            return (null, $"tls.certificate: the new certificate cannot be used, the one in use stays: {e.Message}");
        }
        if (_ticketKeyInUse is { } key)
        {
            // Before the new context takes its first client, or its tickets would be sealed with a key of its own.
            try
            {
                if (!NativeTls.PrimeTicketKeyAsync(options, key).GetAwaiter().GetResult())
                    ServerLog.RenewedTicketKeyNotUsed(_log, "this runtime's TLS gives no way to set it");
            }
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException or OperationCanceledException)
            {
                ServerLog.RenewedTicketKeyNotUsed(_log, e.Message);
            }
        }
        return (new ServerTls(cert, options, files), null);
    }

    /// <summary>Applies <paramref name="next"/> whole or not at all; <paramref name="what"/> names it in the report ("reload").</summary>
    /// <param name="renewal">A reload of the file found new contents in the certificate or key file: the TLS made of them,
    /// or why it cannot be used (a publish of the cluster's tenants does not look: it changes tenants only).</param>
    /// <param name="clientCaChanged">A reload of the file found new contents in <c>tls.client-ca</c>.</param>
    private List<string> ApplyLocked(ServerConfig next, string what, out bool applied, (ServerTls? Tls, string? Problem) renewal = default, bool clientCaChanged = false)
    {
        applied = false;
        var report = new List<string>();
        var problems = new List<string>();
        if (!next.Listen.Equals(Config.Listen) || !SameTls(next.Tls, Config.Tls) || next.StatePath != Config.StatePath || next.Cookie != Config.Cookie)
            problems.Add("listen, tls, state or cookie changed: restart the server to apply");
        else
        {
            if (clientCaChanged) problems.Add("the contents of tls.client-ca changed (it is read at start): restart the server to apply");
            if (renewal.Problem is { } unusable) problems.Add(unusable);
        }
        if (!SameCluster(next.Cluster, Config.Cluster))
            problems.Add("cluster changed: restart the server to apply");
        if (!SameProxy(next.Proxy, Config.Proxy)) problems.Add("proxy changed: restart the server to apply");
        if (!next.Admin.Same(Config.Admin)) problems.Add("admin changed: restart the server to apply");
        var names = next.Tenants.Select(t => t.Name).ToHashSet();
        var removed = _tenants.Values.Where(t => !names.Contains(t.Name)).ToList();
        var commits = new List<(string Tenant, Action Commit)>();
        var added = new List<TenantRuntime>();
        // Every tenant is checked whatever else is wrong, so the report lists every reason at once.
        foreach (var t in next.Tenants)
        {
            if (!_tenants.TryGetValue(t.Name, out var runtime)) continue;
            if (runtime.Prepare(t, out var commit) is { } why) problems.Add($"tenant {t.Name}: {why}");
            else commits.Add((t.Name, commit!));
        }
        if (problems.Count == 0)
        {
            foreach (var t in next.Tenants)
            {
                if (_tenants.ContainsKey(t.Name)) continue;
                // A new tenant is made (and, on a running server, its namespace and TUN set up) before anything is
                // applied, so that a failure leaves everything as it was.
                try
                {
                    var fresh = MakeTenant(t);
                    added.Add(fresh);
                    if (_started) fresh.Start();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    problems.Add($"tenant {t.Name} cannot be added: {e.Message}");
                }
            }
        }
        if (problems.Count > 0)
        {
            foreach (var fresh in added) fresh.Dispose();
            report.Add($"{what} refused, {problems.Count} change(s) cannot be applied live; nothing was applied:");
            report.AddRange(problems.Select(p => "  " + p));
            foreach (var line in report) _log.LogError("{Line}", line);
            return report;
        }
        foreach (var (tenant, commit) in commits)
        {
            commit();
            report.Add($"tenant {tenant}: applied");
        }
        // A session that got its address between the check of a new pool and its commit, outside the new pool.
        if (Sessions.KickWhere(s => s.Tenant.HoldsAddressOutsidePools(s) ? "its address is outside the tenant's new pool" : null) is > 0 and var raced)
            report.Add($"{raced} session(s) ended: their address is outside their tenant's new pool");
        if (added.Count > 0 || removed.Count > 0)
        {
            var tenants = new Dictionary<string, TenantRuntime>(_tenants, StringComparer.Ordinal);
            foreach (var gone in removed) tenants.Remove(gone.Name);
            foreach (var fresh in added) tenants[fresh.Name] = fresh;
            _tenants = tenants;
            Authenticator.Replace(tenants);
            foreach (var fresh in added) report.Add($"tenant {fresh.Name}: added");
            foreach (var gone in removed)
            {
                int kicked = Sessions.KickWhere(s => s.Tenant == gone ? "tenant removed" : null);
                gone.Dispose();
                report.Add($"tenant {gone.Name}: removed, {kicked} session(s) ended");
            }
        }
        if (renewal.Tls is { } renewed)
        {
            _tls = renewed; // new handshakes present it; established sessions keep their TLS
            var pin = CertificatePin.Compute(renewed.Certificate);
            ServerLog.ServerCertificateRenewed(_log, next.Tls.Certificate, pin);
            WarnIfExpiring(renewed.Certificate, next.Tls.Certificate);
            report.Add($"tls.certificate: renewed, new handshakes present it (pin {pin}, valid until {renewed.Certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC)");
        }
        // Asked for when any tenant takes certificates, as it may have begun or ceased to (its client-ca) in this reload.
        TlsOptions.ClientCertificateRequired = Authenticator.CertificateAuthEnabled;
        // The cluster section is the same but for what applies live (binding-ttl-days).
        Config = Config with { Limits = next.Limits, Tenants = next.Tenants, Cluster = next.Cluster };
        _caps.Update(next.Limits.MaxConnections, next.Limits.PerSourceConnections);
        Logins.Configure(next.Limits.LoginBanAfter, next.Limits.LoginSourceBanAfter, next.Limits.LoginFailureWindow, next.Limits.LoginBanTime);
        if (EndSessionsWithStaleCredentials() is > 0 and var ended) report.Add($"{ended} session(s) ended: their user was removed or given a new password, or their certificate revoked or no longer trusted");
        ShareCertificateRevocations();
        foreach (var line in report) _log.LogInformation("{What}: {Line}", what, line);
        applied = true;
        return report;
    }

    // Records compare their lists by reference, so the lists are compared apart.
    private static readonly IReadOnlyList<IPAddress> NoIps = [];
    private static readonly IReadOnlyList<IPNetwork> NoNetworks = [];

    private static bool SameTls(TlsConfig a, TlsConfig b) =>
        a with { GenerateIps = NoIps } == b with { GenerateIps = NoIps } && a.GenerateIps.SequenceEqual(b.GenerateIps);

    private static bool SameProxy(ProxyConfig? a, ProxyConfig? b) => a is null || b is null
        ? a is null && b is null
        : a with { TrustedGateways = NoNetworks } == b with { TrustedGateways = NoNetworks } && a.TrustedGateways.SequenceEqual(b.TrustedGateways);

    private async Task RunConnectionAsync(Socket socket, long id, CancellationToken stopping)
    {
        try
        {
            await new ServerConnection(this, id, _log).RunTlsAsync(socket, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested) { }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Metrics.Closed(CloseReason.PeerClosed);
            _log.LogDebug("conn={Conn} closed: {Error}", id, e.Message);
        }
    }

    /// <summary>How often the tenants' password files are looked at for changes.</summary>
    internal static readonly TimeSpan PasswordFileCheck = TimeSpan.FromSeconds(2);

    private async Task PasswordFileLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(PasswordFileCheck, _time, ct).ConfigureAwait(false);
            RereadPasswordFiles();
        }
    }

    /// <summary>
    /// Takes the password files that changed (`isotun user add`, `user remove`, an edit) as a reload would, without one:
    /// new users may log in, and the sessions of removed users or of users given a new password end. Returns how many
    /// sessions ended.
    /// </summary>
    internal int RereadPasswordFiles()
    {
        lock (_reloadLock)
        {
            if (_disposing) return 0;
            bool changed = false;
            foreach (var tenant in _tenants.Values) changed |= tenant.RefreshPasswords();
            int ended = changed ? EndSessionsWithStaleCredentials() : 0;
            if (ended > 0) _log.LogInformation("password files: {Ended} session(s) ended: their user was removed or given a new password", ended);
            return ended;
        }
    }

    private async Task ReapLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            Sessions.Reap();
        }
    }

    private (X509Certificate2, string) LoadServerCertificate(ServerConfig config)
    {
        var tls = config.Tls;
        if (!File.Exists(tls.Certificate) && !File.Exists(tls.Key))
        {
            // First start: make a CA and a server certificate next to where the config expects them.
            var dir = new PkiDirectory(Path.GetDirectoryName(tls.Certificate)!);
            var issued = dir.EnsureServer(tls.ServerName ?? "server", tls.GenerateIps);
            // The PKI names its files after the server; put them where the config says they are. The key first (its
            // directory made, the owner's alone, if missing): a certificate without its key would stop every later start.
            if (Path.GetFullPath(issued.KeyPath) != Path.GetFullPath(tls.Key))
            {
                SecretFile.CreateDirectoryFor(tls.Key);
                SecretFile.WriteAllBytes(tls.Key, File.ReadAllBytes(issued.KeyPath), overwrite: false);
            }
            if (Path.GetFullPath(issued.CertificatePath) != Path.GetFullPath(tls.Certificate))
                File.Copy(issued.CertificatePath, tls.Certificate);
            _log.LogWarning("no server certificate found: generated {Cert} ({Pin}); pass this pin to openconnect --servercert", issued.CertificatePath, issued.Pin);
        }
        return (PemLoader.LoadCertificateWithKey(tls.Certificate, tls.Key), tls.Certificate);
    }

    private async Task CookieKeyLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMinutes(1), _time, ct).ConfigureAwait(false);
            await RotateCookieKeysAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Puts a new cookie key to work when the newest is <c>cookie.rotate-hours</c> old. Alone, the ring goes to the key
    /// file first (a ring that cannot be kept is not used: a restart would lose its key); on a cluster, one node rotates
    /// the shared ring and every node takes it. Older keys open their cookies until those expire. Never throws but for
    /// cancellation: a failed rotation keeps the keys in use and is tried again a minute later.
    /// </summary>
    internal async Task RotateCookieKeysAsync(CancellationToken ct)
    {
        var cookie = Config.Cookie;
        if (Shared is { } shared)
        {
            try
            {
                Cookies.Use(await shared.RotateCookieKeysAsync(cookie.RotateEvery, cookie.Lifetime, ct).ConfigureAwait(false));
            }
            catch (Exception e) when (e is KeyValueStoreException or InvalidDataException)
            {
                _log.LogWarning("cluster: the cookie keys could not be checked for rotation: {Error}; the keys in use stay", e.Message);
            }
            return;
        }
        var ring = Cookies.Ring;
        var now = _time.GetUtcNow();
        if (!ring.RotationDue(now, cookie.RotateEvery)) return;
        var next = ring.Rotated(now, cookie.Lifetime);
        try
        {
            CookieKeyFile.Save(cookie.KeyFile, next);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogError("cookie keys not rotated: cannot write {Path}: {Error}; key {Id} keeps sealing", cookie.KeyFile, e.Message, ring.Current.Id);
            return;
        }
        Cookies.Use(next);
        _log.LogInformation("cookie keys rotated: key {Id} seals now; {Older} older key(s) kept until their cookies expire", next.Current.Id, next.Keys.Count - 1);
    }

    /// <summary>At a scrape: each tenant's TUN readers, and its live connections' send queues together.</summary>
    internal QueueReport ReadQueues()
    {
        var tenants = _tenants;
        var readers = tenants.Values.SelectMany(t => t.ReaderSamples()).ToList();
        var writers = new Dictionary<TenantRuntime, WriterSample>();
        foreach (var t in tenants.Values) writers[t] = new WriterSample(t.Name, 0, 0, 0, 0, 0);
        foreach (var session in Sessions.All)
        {
            if (!writers.TryGetValue(session.Tenant, out var w)) continue;
            foreach (var c in session.Live)
                w = w with { Depth = w.Depth + c.Writer.Queued, Capacity = w.Capacity + c.Writer.Capacity, HighWater = Math.Max(w.HighWater, Volatile.Read(ref c.Writer.HighWater)) };
            writers[session.Tenant] = w with { HeldBytes = w.HeldBytes + session.Budget.Held, BudgetBytes = w.BudgetBytes + session.Budget.Limit };
        }
        return new QueueReport(readers, [.. writers.Values]);
    }

    /// <summary>The live limits and what each tenant holds against them, for the session-limit gauges (read at scrape time).</summary>
    internal SessionLimits ReadSessionLimits()
    {
        var held = new Dictionary<TenantRuntime, int>();
        foreach (var s in Sessions.All) held[s.Tenant] = held.GetValueOrDefault(s.Tenant) + 1;
        var tenants = new List<TenantSessionLimit>(_tenants.Count);
        foreach (var t in _tenants.Values) tenants.Add(new(t.Name, t.Config.MaxSessions, held.GetValueOrDefault(t)));
        return new SessionLimits(Config.Limits.MaxSessions, tenants);
    }

    public async ValueTask DisposeAsync()
    {
        lock (_reloadLock) _disposing = true; // a reload still queued (a late SIGHUP) finds it and does nothing
        _queuesWatch.Dispose();
        _sitesWatch.Dispose();
        _certificateWatch.Dispose();
        _clusterWatch?.Dispose();
        _limitsWatch.Dispose();
        foreach (var t in _tenants.Values) t.Dispose();
        State.Dispose();
        Metrics.Dispose();
        await Task.CompletedTask;
    }
}
