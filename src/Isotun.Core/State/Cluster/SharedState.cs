using System.Collections.Concurrent;
using System.Text;
using Isotun.Protocol.Cookies;
using Microsoft.Extensions.Logging;

namespace Isotun.State.Cluster;

/// <summary>A change another node made, which this node must act on.</summary>
public abstract record SharedChange
{
    /// <summary>An operator revoked the user: their sessions on this node end too.</summary>
    public sealed record UserRevoked(string Tenant, string User) : SharedChange;

    /// <summary>An operator enabled a revoked user again from <paramref name="Since"/>: their sessions on this node from
    /// before it end (a node cut off from the store while the user was revoked and enabled may hold some).</summary>
    public sealed record UserEnabled(string Tenant, string User, DateTimeOffset Since) : SharedChange;

    /// <summary>A cookie was revoked (kick, logout, replacement): its session on this node, if any, ends.</summary>
    public sealed record SessionRevoked(Guid Session) : SharedChange;

    /// <summary>Another node banned a login source or user (scope <c>source</c> or <c>user</c>) until a time.</summary>
    public sealed record LoginBanned(string Scope, string Key, DateTimeOffset Until) : SharedChange;

    /// <summary>An operator lifted a login ban on another node.</summary>
    public sealed record LoginBanLifted(string Scope, string Key) : SharedChange;

    /// <summary>Another node rotated the cluster's cookie keys: the new key begins to seal a little later.</summary>
    public sealed record CookieKeysRotated(CookieKeyRing Ring) : SharedChange;

    /// <summary>A tenants document was published (<c>cluster.share-tenants</c>); this node's own reads come too.</summary>
    public sealed record TenantsPublished(SharedTenants Tenants) : SharedChange;

    /// <summary>A node's CRL revokes a tenant's client certificate (serial number, normalised hex): its sessions here end too.</summary>
    public sealed record CertificateRevoked(string Tenant, string Serial) : SharedChange;

    /// <summary>The node that shared a certificate's revocation no longer lists it: a node whose own CRL does shares it again.</summary>
    public sealed record CertificateRevocationLifted(string Tenant, string Serial) : SharedChange;
}

/// <summary>How this node's link to the shared store is, for status, metrics and logs.</summary>
public sealed record SharedStatus(string Node, bool Connected, int PendingWrites, long Revision, string? LastError, long DroppedWrites = 0);

/// <summary>
/// What the nodes of one cluster share through the store (etcd): the cookie key, so that any node opens any node's
/// cookies; the users an operator revoked; and revoked cookies (kicks, logouts, replaced sessions).
/// Each node holds a copy in memory, read whole when it joins and kept current by a watch, so a check is a dictionary
/// lookup and no login or packet waits on the store. A change made here applies to the copy at once and is written to
/// the store in the background, in order: while the store cannot be reached, the changes wait and are written when it
/// is back, and the watch resumes from the last revision it saw; with a <see cref="WriteJournal"/>, the lasting ones
/// (revocations, bans) also wait on disk, so a restart of the node loses none. A change another node made is handed
/// to <see cref="Changed"/>, so that this node ends the sessions it concerns. It owns the store and journal it is given.
/// </summary>
public sealed partial class SharedState : IAsyncDisposable
{
    // The cluster's cookie keys (a CookieKeyRing). A single key from before rings, if the store holds one, becomes the
    // ring's key 0.
    private const string CookieKeysName = "cookie-keys";
    private const string LegacyCookieKeyName = "cookie-key";
    // The key that seals the nodes' TLS session tickets, so a client resumes its TLS session on any node.
    private const string TicketKeyName = "tls-ticket-key";

    /// <summary>How long before it begins to seal a rotated key is in the store: every node learns it first.</summary>
    public static readonly TimeSpan CookieKeyActivation = TimeSpan.FromMinutes(1);
    private const string UsersDir = "revoked-users/";
    private const string SessionsDir = "revoked-sessions/";
    private const string LiveDir = "sessions/";
    private const string BansDir = "login-bans/";
    private const string FailuresDir = "login-failures/";
    private static readonly TimeSpan ProbeEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan WatchIdle = TimeSpan.FromSeconds(30);

    private readonly IKeyValueStore _store;
    private readonly string _prefix;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, byte> _revokedUsers = new(StringComparer.Ordinal);
    // Users enabled again after a revocation, and when: their cookies from before are refused (see EnabledSince).
    private readonly ConcurrentDictionary<string, DateTimeOffset> _enabledSince = new(StringComparer.Ordinal);

    /// <summary>The value under a user's key that says "enabled again at …" rather than "revoked" (a node's name).</summary>
    private static ReadOnlySpan<byte> EnabledValue => "enabled "u8;
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _revokedSessions = new();
    // Login bans by their name in the store ("scope/escaped key").
    private readonly ConcurrentDictionary<string, (string Scope, string Key, DateTimeOffset Until)> _loginBans = new(StringComparer.Ordinal);
    // Failed logins each node counted, by ban name then node: how many, and until when they count.
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, (int Count, DateTimeOffset Until)>> _failures = new(StringComparer.Ordinal);
    // Writes waiting for the store, in order; a write marked NodeLease is attached to the node's lease as it is then,
    // and one with a Kept number waits in the journal too until the store has it.
    // Made: when the write was made here; Seen: the store's revision this node's state reflected then (a key changed
    // after it was changed by another node without this node knowing, see SupersededAsync).
    private readonly record struct Waiting(KeyWrite Write, bool NodeLease, long Kept, DateTimeOffset Made, long Seen);
    private readonly ConcurrentQueue<Waiting> _pending = new();
    private readonly WriteJournal? _journal;
    private readonly Lock _keepOrder = new(); // a kept write's number and its place in the queue agree
    // What this node last published of its sessions (key → value), and under which lease generation.
    private readonly Dictionary<string, byte[]> _published = new(StringComparer.Ordinal);
    private int _publishedGeneration;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stop = new();
    private Task _watch = Task.CompletedTask, _writer = Task.CompletedTask, _leaseLoop = Task.CompletedTask;
    // The node's lease as granted now, swapped whole (lease, generation and keepalive read together).
    private volatile HeldLease? _held;
    private CancellationTokenSource? _watchRun; // the current watch's, to restart it
    private long _revision;
    private long _unstorable; // writes dropped because the store cannot take them
    private int _disposed;
    private volatile bool _connected;
    private volatile string? _lastError;

    private SharedState(IKeyValueStore store, string prefix, string node, ILogger log, TimeProvider time, WriteJournal? journal)
    {
        _store = store;
        _journal = journal;
        _prefix = prefix.TrimEnd('/') + "/";
        Node = node;
        _log = log;
        _time = time;
    }

    public string Node { get; }

    /// <summary>The node's lease: its address blocks are attached to it, so they are orphaned when the node dies.</summary>
    public static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(10);

    /// <summary>This node's lease now (a new one after a lost one), and how many times it was granted.</summary>
    public (long Lease, int Generation) NodeLease => _held is { } h ? (h.Lease, h.Generation) : (0, 0);

    /// <summary>The store the cluster shares (for the address blocks).</summary>
    public IKeyValueStore Store => _store;

    /// <summary>Where this cluster's keys live, ending with '/'.</summary>
    public string Prefix => _prefix;

    /// <summary>The cluster's cookie keys: made by the first node that joined, rotated by any, read by all.</summary>
    public CookieKeyRing CookieKeys => _cookieKeys!;

    private volatile CookieKeyRing? _cookieKeys;

    /// <summary>Called (on a background thread) for each change another node made.</summary>
    public Action<SharedChange>? Changed { get; set; }

    public SharedStatus Status => new(Node, _connected, _pending.Count, Interlocked.Read(ref _revision), _lastError, Interlocked.Read(ref _unstorable));

    public IReadOnlyList<string> RevokedUsers => [.. _revokedUsers.Keys.Order(StringComparer.Ordinal)];

    private volatile SharedTenants? _tenants;

    /// <summary>The tenants document in the store, as read when the node joined and kept current by the watch; null when none was published.</summary>
    public SharedTenants? Tenants => _tenants;

    /// <summary>
    /// Joins the cluster: reads (or, as its first node, makes) the cookie keys (of <paramref name="keyLength"/> bytes),
    /// reads the revocations, applies and queues again what <paramref name="journal"/> kept of an earlier run, and starts
    /// the watch and the writer. Fails when the store cannot be reached: a node needs the cookie keys before it can take
    /// a login.
    /// </summary>
    public static async Task<SharedState> JoinAsync(IKeyValueStore store, string prefix, string node, int keyLength, ILogger log,
        TimeProvider? time = null, WriteJournal? journal = null, CancellationToken ct = default)
    {
        var shared = new SharedState(store, prefix, node, log, time ?? TimeProvider.System, journal);
        shared._cookieKeys = await shared.CookieKeysAsync(keyLength, ct).ConfigureAwait(false);
        await shared.LoadAsync(ct).ConfigureAwait(false);
        await shared.ReplayAsync(ct).ConfigureAwait(false);
        await shared.GrantNodeLeaseAsync(ct).ConfigureAwait(false);
        shared._leaseLoop = Task.Run(shared.LeaseLoopAsync);
        shared._connected = true;
        shared._watch = Task.Run(shared.WatchLoopAsync);
        shared._writer = Task.Run(shared.WriteLoopAsync);
        return shared;
    }

    private async Task<CookieKeyRing> CookieKeysAsync(int length, CancellationToken ct)
    {
        string key = _prefix + CookieKeysName;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (await _store.GetAsync(key, ct).ConfigureAwait(false) is { } entry) return ReadRing(entry);
            // The first node makes the ring (from the key of a cluster from before rings, if there is one); of two first
            // nodes, one wins and the other reads the winner's.
            var now = _time.GetUtcNow();
            var legacy = await _store.GetAsync(_prefix + LegacyCookieKeyName, ct).ConfigureAwait(false);
            if (legacy is not null && legacy.Value.Length != length)
                throw new InvalidDataException($"{legacy.Key} in the cluster store holds {legacy.Value.Length} bytes, not a {length}-byte cookie key");
            var ring = legacy is null ? CookieKeyRing.Create(now) : CookieKeyRing.Of(legacy.Value.ToArray(), now);
            if ((await _store.CompareAndPutAsync(key, ring.ToBytes(), 0, ct: ct).ConfigureAwait(false)).Succeeded) return ring;
        }
        throw new InvalidOperationException($"{key}: could neither read nor create the cookie keys");
    }

    /// <summary>
    /// The cluster's TLS session ticket key, of <paramref name="length"/> bytes: the first node to ask makes it (of two
    /// at once, one wins and the other reads the winner's), every node reads the same. Throws
    /// <see cref="KeyValueStoreException"/> when the store cannot be reached.
    /// </summary>
    public async Task<byte[]> TicketKeyAsync(int length, CancellationToken ct)
    {
        string key = _prefix + TicketKeyName;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (await _store.GetAsync(key, ct).ConfigureAwait(false) is { } entry)
                return entry.Value.Length == length ? entry.Value.ToArray()
                    : throw new InvalidDataException($"{entry.Key} in the cluster store holds {entry.Value.Length} bytes, not a {length}-byte ticket key");
            var fresh = System.Security.Cryptography.RandomNumberGenerator.GetBytes(length);
            if ((await _store.CompareAndPutAsync(key, fresh, 0, ct: ct).ConfigureAwait(false)).Succeeded) return fresh;
        }
        throw new InvalidOperationException($"{key}: could neither read nor create the ticket key");
    }

    private static CookieKeyRing ReadRing(KeyValueEntry entry) =>
        CookieKeyRing.Parse(entry.Value.Span, DateTimeOffset.UnixEpoch, out var error)
        ?? throw new InvalidDataException($"{entry.Key} in the cluster store is not a cookie key ring: {error}");

    /// <summary>
    /// Rotates the cluster's cookie keys when the newest is <paramref name="every"/> old: one node's rotation wins, and
    /// every node, this one too, adopts the ring in the store. The new key begins to seal
    /// <see cref="CookieKeyActivation"/> later. Returns the ring now in use; throws <see cref="KeyValueStoreException"/>
    /// when the store cannot be reached (the keys in use stay).
    /// </summary>
    public async Task<CookieKeyRing> RotateCookieKeysAsync(TimeSpan every, TimeSpan cookieLifetime, CancellationToken ct)
    {
        string key = _prefix + CookieKeysName;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var entry = await _store.GetAsync(key, ct).ConfigureAwait(false)
                ?? throw new InvalidDataException($"{key} is missing from the cluster store");
            var ring = ReadRing(entry);
            var now = _time.GetUtcNow();
            if (ring.RotationDue(now, every))
            {
                var next = ring.Rotated(now, cookieLifetime, CookieKeyActivation);
                if (!(await _store.CompareAndPutAsync(key, next.ToBytes(), entry.ModRevision, ct: ct).ConfigureAwait(false)).Succeeded) continue;
                ring = next;
                _log.LogInformation("cluster: rotated the cookie keys: key {Id} seals from {Start:O}", ring.Current.Id, ring.Current.Created);
            }
            AdoptKeys(ring);
            return CookieKeys;
        }
        return CookieKeys;
    }

    /// <summary>Takes a ring from the store unless this node knows a newer one; true when it was new here.</summary>
    private bool AdoptKeys(CookieKeyRing ring)
    {
        // The watch and a rotation may both bring a ring: the newer one stays, whichever comes last.
        while (true)
        {
            var known = _cookieKeys;
            if (known is not null && known.Current.Id >= ring.Current.Id) return false;
            if (Interlocked.CompareExchange(ref _cookieKeys, ring, known) == known) return true;
        }
    }

    private async Task GrantNodeLeaseAsync(CancellationToken ct)
    {
        long lease = await _store.GrantLeaseAsync(LeaseTtl, ct).ConfigureAwait(false);
        _held = new HeldLease(lease, NodeLease.Generation + 1, _store.KeepAlive(lease));
    }

    /// <summary>
    /// The store refused <paramref name="lease"/> as unknown when this node wrote with it: if it is still the node's
    /// lease, it is over (whatever its keepalive says) and a new one is taken. Writers that see LeaseNotFound call this.
    /// </summary>
    public void LeaseRefused(long lease)
    {
        if (_held is { } held && held.Lease == lease) held.Refused.TrySetResult();
    }

    /// <summary>Waits until the node holds a lease granted after generation <paramref name="generation"/>.</summary>
    public async Task<(long Lease, int Generation)> LeaseAfterAsync(int generation, CancellationToken ct)
    {
        while (NodeLease is var now && now.Generation <= generation) await Task.Delay(50, ct).ConfigureAwait(false);
        return NodeLease;
    }

    /// <summary>
    /// When the node's lease is over (etcd was away longer than its TTL, or refused it as unknown), a new one is
    /// granted as soon as etcd answers.
    /// </summary>
    private async Task LeaseLoopAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var held = _held!;
                var ended = await Task.WhenAny(held.KeepAlive.Lost, held.Refused.Task).WaitAsync(ct).ConfigureAwait(false);
                _log.LogWarning("cluster: node {Node} lost its lease {Lease} ({Why}): its address blocks are orphaned; taking a new lease", Node, held.Lease,
                    ended == held.Refused.Task ? "the store no longer knows it"
                    : held.KeepAlive.Failure is { } failure ? $"renewing it failed: {failure.Message}" : "it ran out");
                await held.KeepAlive.DisposeAsync().ConfigureAwait(false);
                while (!ct.IsCancellationRequested)
                {
                    try
                    {
                        await GrantNodeLeaseAsync(ct).ConfigureAwait(false);
                        break;
                    }
                    catch (KeyValueStoreException)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>One grant of the node's lease: its keepalive, and a signal for a write the store refused for it.</summary>
    private sealed class HeldLease(long lease, int generation, ILeaseKeepAlive keepAlive)
    {
        public long Lease { get; } = lease;
        public int Generation { get; } = generation;
        public ILeaseKeepAlive KeepAlive { get; } = keepAlive;
        public TaskCompletionSource Refused { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Reads every revocation and the revision to watch from.</summary>
    private async Task LoadAsync(CancellationToken ct)
    {
        var users = await _store.RangeAsync(_prefix + UsersDir, ct).ConfigureAwait(false);
        var sessions = await _store.RangeAsync(_prefix + SessionsDir, ct).ConfigureAwait(false);
        var bans = await _store.RangeAsync(_prefix + BansDir, ct).ConfigureAwait(false);
        var failures = await _store.RangeAsync(_prefix + FailuresDir, ct).ConfigureAwait(false);
        var certificates = await _store.RangeAsync(_prefix + CertificatesDir, ct).ConfigureAwait(false);
        LoadCertificates(certificates.Entries);
        _failures.Clear();
        foreach (var e in failures.Entries) ApplyFailures(e.Key, e.Value.Span, deleted: false);
        _loginBans.Clear();
        foreach (var e in bans.Entries)
            if (ParseBan(e.Key, e.Value.Span) is var (name, scope, key, until)) _loginBans[name] = (scope, key, until);
        // Filled in before what is gone is taken out, never emptied in between: a login or CONNECT checked meanwhile
        // sees every revocation that holds before and after.
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in users.Entries)
        {
            var who = e.Key[(_prefix.Length + UsersDir.Length)..];
            listed.Add(who);
            ApplyUser(who, e.Value.Span);
        }
        KeepOnly(_revokedUsers, listed);
        KeepOnly(_enabledSince, listed);
        var revokedSessions = new HashSet<Guid>();
        foreach (var e in sessions.Entries)
            if (ParseSession(e.Key, e.Value.Span) is var (id, until))
            {
                revokedSessions.Add(id);
                _revokedSessions[id] = until;
            }
        KeepOnly(_revokedSessions, revokedSessions);
        if (await _store.GetAsync(_prefix + SharedTenants.KeyName, ct).ConfigureAwait(false) is { } tenants) AdoptTenants(SharedTenants.Of(tenants));
        Interlocked.Exchange(ref _revision, new[] { users.Revision, sessions.Revision, bans.Revision, failures.Revision, certificates.Revision }.Min());
    }

    /// <summary>Takes out of <paramref name="map"/> every key the store no longer lists.</summary>
    private static void KeepOnly<TKey, TValue>(ConcurrentDictionary<TKey, TValue> map, HashSet<TKey> listed) where TKey : notnull
    {
        foreach (var key in map.Keys)
            if (!listed.Contains(key)) map.TryRemove(key, out _);
    }

    public bool IsUserRevoked(string tenant, string user) => _revokedUsers.ContainsKey($"{tenant}/{user}");

    /// <summary>When a revoked user was enabled again, if they were: cookies issued before it stay refused.</summary>
    public DateTimeOffset? EnabledSince(string tenant, string user) => _enabledSince.TryGetValue($"{tenant}/{user}", out var since) ? since : null;

    /// <summary>A user's key from the store: revoked (the value names the node that revoked), or enabled again at a time.
    /// Returns what is new here: the user revoked, or enabled from a time not known here before; else null.</summary>
    private SharedChange? ApplyUser(string who, ReadOnlySpan<byte> value)
    {
        if (who.Split('/', 2) is not [var tenant, var user]) return null;
        if (EnabledAt(value) is { } since)
        {
            bool known = _enabledSince.TryGetValue(who, out var before) && before == since;
            _enabledSince[who] = since;
            _revokedUsers.TryRemove(who, out _);
            return known ? null : new SharedChange.UserEnabled(tenant, user, since);
        }
        _enabledSince.TryRemove(who, out _);
        return _revokedUsers.TryAdd(who, 0) ? new SharedChange.UserRevoked(tenant, user) : null;
    }

    public bool IsSessionRevoked(Guid session) => _revokedSessions.ContainsKey(session);

    /// <summary>Revokes a user everywhere: here at once, on the other nodes when they see the write. False when it already was.</summary>
    public bool RevokeUser(string tenant, string user)
    {
        if (!_revokedUsers.TryAdd($"{tenant}/{user}", 0)) return false;
        _enabledSince.TryRemove($"{tenant}/{user}", out _);
        Write(KeyWrite.Put(_prefix + UsersDir + $"{tenant}/{user}", Encoding.UTF8.GetBytes(Node)), keep: true);
        return true;
    }

    /// <summary>
    /// Lifts a user's revocation everywhere, from now: the cookies the user held before it stay refused (a revocation
    /// reaches only the sessions it finds, so one held by a stolen laptop asleep would otherwise work again). False
    /// when the user was not revoked.
    /// </summary>
    public bool EnableUser(string tenant, string user)
    {
        string who = $"{tenant}/{user}";
        if (!_revokedUsers.TryRemove(who, out _)) return false;
        var now = UnixSeconds.Whole(_time.GetUtcNow()); // as every node reads it
        _enabledSince[who] = now;
        Write(KeyWrite.Put(_prefix + UsersDir + who, (byte[])[.. EnabledValue, .. UnixSeconds.Bytes(now)]), keep: true);
        return true;
    }

    /// <summary>
    /// Deletes the keys of users enabled again before <paramref name="before"/>: once no cookie from before an enabling
    /// can still be valid (the cookie lifetime has passed since), the key says nothing, and users revoked and enabled
    /// over the years would otherwise pile up. Each delete is made only if the key is unchanged since read, so a node
    /// that revokes the user meanwhile wins. Returns how many were deleted.
    /// </summary>
    public async Task<int> ForgetEnablingsBeforeAsync(DateTimeOffset before, CancellationToken ct)
    {
        int forgotten = 0;
        foreach (var e in (await _store.RangeAsync(_prefix + UsersDir, ct).ConfigureAwait(false)).Entries)
            if (EnabledAt(e.Value.Span) < before
                && (await _store.CommitAsync([new(e.Key, e.ModRevision)], [KeyWrite.Delete(e.Key)], ct).ConfigureAwait(false)).Succeeded)
                forgotten++;
        return forgotten;
    }

    /// <summary>Revokes a cookie everywhere until <paramref name="until"/>, when it expires anyway.</summary>
    public void RevokeSession(Guid session, DateTimeOffset until)
    {
        if (!_revokedSessions.TryAdd(session, until)) return;
        Write(KeyWrite.Put(_prefix + SessionsDir + session.ToString("N"), UnixSeconds.Bytes(until)), keep: true);
    }

    /// <summary>
    /// Shares a login ban made here (scope <c>source</c> or <c>user</c>): every node refuses that source or user until
    /// <paramref name="until"/>. Each node still counts failures on its own; the ban, once made, holds everywhere.
    /// </summary>
    public void BanLogin(string scope, string key, DateTimeOffset until)
    {
        string name = BanName(scope, key);
        _loginBans[name] = (scope, key, until);
        // Past this many waiting writes (a spray through a long outage of the store bans source after source), a ban
        // holds here without being shared: the queue and the journal on disk stop growing, and the revocations made
        // meanwhile do not wait behind bans that have mostly run out when the store is back.
        if (_pending.Count >= MaxPendingForBans) return;
        Write(KeyWrite.Put(_prefix + BansDir + name, UnixSeconds.Bytes(until)), keep: true);
    }

    /// <summary>Past this many writes waiting for the store, new login bans are no longer shared.</summary>
    internal const int MaxPendingForBans = 2 * MaxPendingForFailures;

    /// <summary>Lifts a login ban everywhere (an operator's unban).</summary>
    public void LiftLoginBan(string scope, string key)
    {
        string name = BanName(scope, key);
        _loginBans.TryRemove(name, out _);
        Write(KeyWrite.Delete(_prefix + BansDir + name), keep: true);
    }

    /// <summary>Past this many writes waiting for the store, failed-login counts are no longer shared.</summary>
    internal const int MaxPendingForFailures = 10_000;

    /// <summary>
    /// Shares this node's count of failed logins for a source or user (scope and key as for bans), counted until
    /// <paramref name="until"/>; 0 withdraws it. The entry lives on the node's lease: a node that dies takes its counts.
    /// </summary>
    public void CountLoginFailures(string scope, string key, int count, DateTimeOffset until)
    {
        // Shared counts are a help, not a duty (this node's throttle counts them anyway): while the store is away, a
        // password spray must not grow the queue of waiting writes without bound.
        if (_pending.Count >= MaxPendingForFailures) return;
        string storeKey = _prefix + FailuresDir + BanName(scope, key) + "/" + Node;
        if (count > 0) Write(KeyWrite.Put(storeKey, Encoding.UTF8.GetBytes($"{count} {until.ToUnixTimeSeconds()}")), nodeLease: true);
        else Write(KeyWrite.Delete(storeKey));
    }

    /// <summary>The failed logins for a source or user that the other nodes counted and that still count.</summary>
    public int LoginFailuresElsewhere(string scope, string key)
    {
        if (!_failures.TryGetValue(BanName(scope, key), out var byNode)) return 0;
        var now = _time.GetUtcNow();
        int sum = 0;
        foreach (var (node, (count, until)) in byNode)
            if (node != Node && until > now) sum += count;
        return sum;
    }

    /// <summary>A node's failure count from the store (<c>login-failures/scope/escaped key/node</c>: "count until").</summary>
    private void ApplyFailures(string key, ReadOnlySpan<byte> value, bool deleted)
    {
        var rest = key[(_prefix.Length + FailuresDir.Length)..];
        int slash = rest.LastIndexOf('/');
        if (slash <= 0) return;
        string name = rest[..slash], node = rest[(slash + 1)..];
        if (deleted)
        {
            if (_failures.TryGetValue(name, out var gone) && gone.TryRemove(node, out _) && gone.IsEmpty)
                _failures.TryRemove(new KeyValuePair<string, ConcurrentDictionary<string, (int, DateTimeOffset)>>(name, gone));
            return;
        }
        var parts = Encoding.UTF8.GetString(value).Split(' ');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int count) || count <= 0 || !long.TryParse(parts[1], out long until)
            || until < 0 || until > DateTimeOffset.MaxValue.ToUnixTimeSeconds()) return;
        // Bounded as the login throttle's own tables are: past the limit, new names are not tracked.
        if (!_failures.TryGetValue(name, out var byNode))
        {
            if (_failures.Count >= 100_000) return;
            byNode = _failures.GetOrAdd(name, _ => new(StringComparer.Ordinal));
        }
        byNode[node] = (count, DateTimeOffset.FromUnixTimeSeconds(until));
    }

    /// <summary>The login bans the cluster holds now (scope, key, until), for a node that has just joined.</summary>
    public IReadOnlyList<(string Scope, string Key, DateTimeOffset Until)> LoginBans => [.. _loginBans.Values];

    // A user key holds '/' (group/user), and either may hold anything a login sent: escaped, it is one key segment.
    private static string BanName(string scope, string key) => scope + "/" + Uri.EscapeDataString(key);

    /// <summary>A ban key and value from the store: its name under the bans directory, scope, key and expiry.</summary>
    private (string Name, string Scope, string Key, DateTimeOffset Until)? ParseBan(string key, ReadOnlySpan<byte> value)
    {
        if (!key.StartsWith(_prefix + BansDir, StringComparison.Ordinal)) return null;
        string name = key[(_prefix.Length + BansDir.Length)..];
        if (name.Split('/', 2) is not [var scope, var escaped] || escaped.Length == 0) return null;
        return (name, scope, Uri.UnescapeDataString(escaped), UnixSeconds.Parse(value) ?? DateTimeOffset.UnixEpoch);
    }

    /// <summary>
    /// Queues a write for the store, and with <paramref name="keep"/> keeps it in the journal too until the store has
    /// it. One the store would refuse (a key or value past its limits) is dropped here with an error: at the head of
    /// the queue it would stop every write behind it (revocations, bans, sessions).
    /// </summary>
    private void Write(KeyWrite write, bool nodeLease = false, bool keep = false)
    {
        try
        {
            KeyValueLimits.CheckCommit([], [write]);
        }
        catch (ArgumentException e)
        {
            Unstorable(e);
            return;
        }
        var waiting = new Waiting(write, nodeLease, 0, _time.GetUtcNow(), Interlocked.Read(ref _revision));
        if (keep && _journal is not null)
        {
            lock (_keepOrder) _pending.Enqueue(waiting with { Kept = Keep(waiting) });
        }
        else _pending.Enqueue(waiting);
        _wake.Release();
    }

    /// <summary>Keeps a write in the journal; 0 when the disk refused it (it still waits in memory).</summary>
    private long Keep(Waiting waiting)
    {
        var write = waiting.Write;
        try
        {
            return _journal!.Append(write, waiting.Made, waiting.Seen);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
        {
            _log.LogError("cluster: a change for {Key} could not be kept in {Journal} ({Error}); it waits in memory only, and a restart before the store has it loses it",
                write.Key, _journal!.Path, e.Message);
            return 0;
        }
    }

    /// <summary>Forgets a kept write the store has taken (or can never take).</summary>
    private void Forget(long kept)
    {
        if (kept == 0) return;
        try
        {
            _journal!.Remove(kept);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
        {
            // Written again at the next start: the same put or delete twice changes nothing.
            _log.LogWarning("cluster: {Journal}: could not forget a change the store has ({Error})", _journal!.Path, e.Message);
        }
    }

    /// <summary>
    /// The changes an earlier run of this node made and the store never took: applied here over what was read, and
    /// queued again in their order (a change for another cluster prefix is dropped with a warning, and so is a user's
    /// revocation or enabling that another node's later change in the store supersedes, see <see cref="SupersededAsync"/>).
    /// </summary>
    private async Task ReplayAsync(CancellationToken ct)
    {
        if (_journal is null) return;
        int replayed = 0;
        foreach (var (kept, write, made, seen) in _journal.Entries())
        {
            if (!write.Key.StartsWith(_prefix, StringComparison.Ordinal))
            {
                _log.LogWarning("cluster: a waiting change for {Key} is outside this cluster's prefix {Prefix}; dropped", write.Key, _prefix);
                Forget(kept);
                continue;
            }
            if (await SupersededAsync(write, made ?? DateTimeOffset.MaxValue, seen ?? 0, ct).ConfigureAwait(false) is { } superseded)
            {
                _log.LogWarning("cluster: a change for {Key} made on this node before it last stopped had not reached the store, and the store now holds {Newer}; the store's stands: make the change again if it is still meant",
                    write.Key, superseded.Why);
                Forget(kept);
                continue;
            }
            Apply(new KeyValueEvent(write.IsDelete ? KeyValueEventKind.Delete : KeyValueEventKind.Put, write.Key, write.Value, 0));
            _pending.Enqueue(new Waiting(write, false, kept, made ?? DateTimeOffset.MaxValue, seen ?? 0));
            replayed++;
        }
        if (replayed > 0)
            _log.LogWarning("cluster: {Count} change(s) made before this node last stopped had not reached the store; applied here and written now", replayed);
    }

    /// <summary>
    /// Whether a user's revocation or enabling that waited (for the store, or in the journal across a restart) is older
    /// than what another node wrote to the same key since: the store's entry, with what it holds said for the log; null
    /// to write it. A change this node had seen when it made its own (the key's revision at most <paramref name="seen"/>),
    /// or a revocation of its own (its changes reach the store in their order), came first. Otherwise the times tell,
    /// where there are any; where not, the user stays revoked:
    /// <list type="bullet">
    /// <item>an enabling at T over an enabling at T2 ≥ T, or a revocation made at <paramref name="made"/> over an
    /// enabling at a later T2: superseded;</item>
    /// <item>an enabling over another node's revocation: superseded (the revocation carries no time, and may be the later);</item>
    /// <item>a revocation over a revocation: written, to the same effect.</item>
    /// </list>
    /// </summary>
    private async Task<(string Why, KeyValueEntry Current)?> SupersededAsync(KeyWrite write, DateTimeOffset made, long seen, CancellationToken ct)
    {
        if (!IsUserPut(write)) return null;
        if (await _store.GetAsync(write.Key, ct).ConfigureAwait(false) is not { } now || now.ModRevision <= seen) return null;
        var current = now.Value.Span;
        DateTimeOffset? enabledThen = EnabledAt(current);
        string? why = EnabledAt(write.Value.Span) is { } enabling
            ? enabledThen is null
                ? current.SequenceEqual(Encoding.UTF8.GetBytes(Node)) ? null : $"a revocation by node {Encoding.UTF8.GetString(current)}"
                : enabledThen >= enabling ? $"an enabling at {enabledThen:u}" : null
            : enabledThen > made ? $"an enabling at {enabledThen:u}" : null;
        return why is null ? null : (why, now);
    }

    /// <summary><see cref="SupersededAsync(KeyWrite, DateTimeOffset, long, CancellationToken)"/> for a waiting write, within the store's call deadline.</summary>
    private async Task<(string Why, KeyValueEntry Current)?> SupersededAsync(Waiting waiting, CancellationToken ct)
    {
        if (!IsUserPut(waiting.Write)) return null; // before the deadline is made: most waiting writes are not users'
        using var call = CancellationTokenSource.CreateLinkedTokenSource(ct);
        call.CancelAfter(CallTimeout);
        return await SupersededAsync(waiting.Write, waiting.Made, waiting.Seen, call.Token).ConfigureAwait(false);
    }

    /// <summary>A user's revocation or enabling (a put of a key under the users directory).</summary>
    private bool IsUserPut(KeyWrite write) => !write.IsDelete && write.Key.StartsWith(_prefix + UsersDir, StringComparison.Ordinal);

    /// <summary>The time in a user's "enabled" value; null for a revocation.</summary>
    private static DateTimeOffset? EnabledAt(ReadOnlySpan<byte> value) =>
        value.StartsWith(EnabledValue) ? UnixSeconds.Parse(value[EnabledValue.Length..]) : null;

    /// <summary>Counts and logs a write dropped because the store cannot take it.</summary>
    private void Unstorable(ArgumentException e)
    {
        Interlocked.Increment(ref _unstorable);
        _log.LogError("cluster: a write the store cannot take was dropped ({Error})", e.Message);
    }

    /// <summary>
    /// Publishes this node's sessions (id → a summary), so any node can list the cluster's: what changed since the last
    /// call is written, attached to the node's lease (a dead node's vanish with it), and what went is deleted. While the
    /// store cannot be reached nothing is queued: the list is a snapshot, and what changed meanwhile goes as one
    /// difference once it is back (else each reconnecting client of a long outage would queue writes). Call it from one
    /// thread.
    /// </summary>
    public void PublishSessions(IReadOnlyDictionary<Guid, byte[]> sessions)
    {
        if (!_connected) return;
        var generation = NodeLease.Generation;
        if (generation != _publishedGeneration)
        {
            _published.Clear(); // a new lease: everything again
            _publishedGeneration = generation;
        }
        string dir = _prefix + LiveDir + Node + "/";
        foreach (var (id, value) in sessions)
        {
            string key = dir + id.ToString("N");
            if (_published.TryGetValue(key, out var old) && old.AsSpan().SequenceEqual(value)) continue;
            _published[key] = value;
            Write(KeyWrite.Put(key, value), nodeLease: true);
        }
        foreach (var key in _published.Keys.Where(k => !sessions.ContainsKey(Guid.ParseExact(k[dir.Length..], "N"))).ToList())
        {
            _published.Remove(key);
            Write(KeyWrite.Delete(key));
        }
    }

    /// <summary>Every node's published sessions: (node, summary).</summary>
    public async Task<IReadOnlyList<(string Node, ReadOnlyMemory<byte> Summary)>> SessionsAsync(CancellationToken ct)
    {
        var range = await _store.RangeAsync(_prefix + LiveDir, ct).ConfigureAwait(false);
        return range.Entries.Select(e => (e.Key[(_prefix.Length + LiveDir.Length)..].Split('/')[0], e.Value)).ToList();
    }

    private readonly Lock _recentLock = new();
    private (long At, Task<IReadOnlyList<(string Node, ReadOnlyMemory<byte> Summary)>> Read)? _recent;

    /// <summary>
    /// <see cref="SessionsAsync"/> as read at most <paramref name="fresh"/> ago: the callers within that time share one
    /// read, so a storm of address claims (a dead node's users coming back through the others) reads the whole list a
    /// few times, not once per claim. Nodes publish every 2 s, so a second's age adds little. A failed read is not
    /// kept. Within 5 s, else <see cref="KeyValueStoreException"/>.
    /// </summary>
    public Task<IReadOnlyList<(string Node, ReadOnlyMemory<byte> Summary)>> RecentSessionsAsync(TimeSpan fresh, CancellationToken ct)
    {
        long now = Environment.TickCount64;
        Task<IReadOnlyList<(string Node, ReadOnlyMemory<byte> Summary)>> read;
        lock (_recentLock)
        {
            if (_recent is not { } last || now - last.At > fresh.TotalMilliseconds || last.Read.IsFaulted || last.Read.IsCanceled)
                _recent = last = (now, ReadSessionsAsync());
            read = last.Read;
        }
        return read.WaitAsync(ct);
    }

    private async Task<IReadOnlyList<(string Node, ReadOnlyMemory<byte> Summary)>> ReadSessionsAsync()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            return await SessionsAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new KeyValueStoreException(KeyValueStoreError.Unavailable, "the cluster's store did not answer within 5 s");
        }
    }

    /// <summary>Waiting writes one commit may take together, from the head of the queue: at most <paramref name="most"/>,
    /// each key once (a store refuses a commit that writes a key twice), and at most <see cref="BatchBytes"/> in all.</summary>
    private List<Waiting> NextBatch(int most)
    {
        var batch = new List<Waiting>();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        long bytes = 0;
        // Only this loop takes from the queue, so its head stays as enumerated.
        foreach (var item in _pending)
        {
            bytes += item.Write.Key.Length + item.Write.Value.Length;
            if (batch.Count == most || (batch.Count > 0 && bytes > BatchBytes) || !keys.Add(item.Write.Key)) break;
            batch.Add(item);
        }
        return batch;
    }

    /// <summary>The most bytes of keys and values one batched commit carries (etcd takes requests up to 1.5 MiB by default).</summary>
    private const int BatchBytes = 256 * 1024;

    /// <summary>Writes the waiting changes in order; probes the store when there are none, and forgets expired cookies.</summary>
    private async Task WriteLoopAsync()
    {
        var ct = _stop.Token;
        var nextSweep = _time.GetUtcNow();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(ProbeEvery, ct).ConfigureAwait(false);
                if (_pending.IsEmpty)
                {
                    using var probe = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    probe.CancelAfter(CallTimeout);
                    await _store.GetAsync(_prefix + CookieKeysName, probe.Token).ConfigureAwait(false);
                }
                int most = KeyValueLimits.MaxOperations;
                while (!_pending.IsEmpty)
                {
                    // The waiting writes go in batches (one commit, one round trip, each within its own deadline): a
                    // node that shares a long CRL queues thousands at once, and the revocations behind them must not
                    // wait for each to make its own round trip.
                    var batch = NextBatch(most);
                    var held = _held!;
                    var writes = new List<KeyWrite>(batch.Count);
                    foreach (var waiting in batch)
                        if (await SupersededAsync(waiting, ct).ConfigureAwait(false) is not { } superseded)
                            writes.Add(waiting.NodeLease ? KeyWrite.Put(waiting.Write.Key, waiting.Write.Value, held.Lease) : waiting.Write);
                        else
                        {
                            _log.LogWarning("cluster: a change for {Key} made on this node while it could not reach the store is older than what the store holds now, {Newer}; the store's stands: make the change again if it is still meant",
                                waiting.Write.Key, superseded.Why);
                            var current = superseded.Current;
                            Apply(new KeyValueEvent(KeyValueEventKind.Put, current.Key, current.Value, current.ModRevision));
                        }
                    using var call = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    call.CancelAfter(CallTimeout);
                    try
                    {
                        if (writes.Count > 0) await _store.CommitAsync([], writes, call.Token).ConfigureAwait(false);
                    }
                    catch (KeyValueStoreException e) when (e.Error == KeyValueStoreError.LeaseNotFound && batch.Any(b => b.NodeLease))
                    {
                        // The store no longer knows the lease (its keepalive has not said so yet, or failed to): take a new one, and write with it.
                        LeaseRefused(held.Lease);
                        await LeaseAfterAsync(held.Generation, call.Token).ConfigureAwait(false);
                        continue;
                    }
                    catch (ArgumentException) when (batch.Count > 1)
                    {
                        most = 1; // one of them is refused: one at a time, to find it and let the others in
                        continue;
                    }
                    catch (ArgumentException e)
                    {
                        // Refused as malformed (Write checks the limits first, so a store's own stricter rule): this
                        // write can never go in, and the ones behind it must.
                        Unstorable(e);
                    }
                    foreach (var written in batch)
                    {
                        _pending.TryDequeue(out _);
                        Forget(written.Kept);
                    }
                    most = KeyValueLimits.MaxOperations;
                }
                Reachable();
                if (_time.GetUtcNow() >= nextSweep)
                {
                    nextSweep = _time.GetUtcNow() + TimeSpan.FromMinutes(1);
                    ForgetExpiredSessions();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is KeyValueStoreException or OperationCanceledException or IOException)
            {
                Unreachable(e is OperationCanceledException ? "no answer within 3 s" : e.Message);
            }
        }
    }

    /// <summary>A cookie past its expiry is refused anyway: its revocation is dropped here, and from the store by whichever node sees it first.</summary>
    private void ForgetExpiredSessions()
    {
        var now = _time.GetUtcNow();
        foreach (var (id, until) in _revokedSessions)
        {
            if (until >= now || !_revokedSessions.TryRemove(id, out _)) continue;
            Write(KeyWrite.Delete(_prefix + SessionsDir + id.ToString("N")));
        }
        foreach (var (name, ban) in _loginBans)
        {
            if (ban.Until >= now || !_loginBans.TryRemove(name, out _)) continue;
            Write(KeyWrite.Delete(_prefix + BansDir + name));
        }
    }

    private async Task WatchLoopAsync()
    {
        var ct = _stop.Token;
        var backoff = TimeSpan.FromMilliseconds(200);
        while (!ct.IsCancellationRequested)
        {
            // A watch stream can go quiet without saying it broke (seen with etcd over TLS after a restart): it is
            // opened again, from the last revision seen, when the store comes back and after WatchIdle without events.
            using var watch = CancellationTokenSource.CreateLinkedTokenSource(ct);
            watch.CancelAfter(WatchIdle);
            Volatile.Write(ref _watchRun, watch);
            try
            {
                await foreach (var e in _store.WatchAsync(_prefix, Interlocked.Read(ref _revision) + 1, watch.Token, progress: true).ConfigureAwait(false))
                {
                    // Progress: nothing of ours changed up to its revision, so a watch opened again starts after it, not
                    // at the last change of ours, which a store busy with others' keys may have compacted away since.
                    if (e.Kind != KeyValueEventKind.Progress) Apply(e);
                    if (e.Revision > Interlocked.Read(ref _revision)) Interlocked.Exchange(ref _revision, e.Revision);
                    backoff = TimeSpan.FromMilliseconds(200);
                    watch.CancelAfter(WatchIdle);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception) when (watch.IsCancellationRequested)
            {
                continue; // restarted (however the store reported the cancelled call)
            }
            catch (KeyValueStoreException e) when (e.Error == KeyValueStoreError.Compacted)
            {
                // The history since our revision is gone: read everything again, and tell what is new.
                _log.LogWarning("cluster: the store no longer has the changes since revision {Revision}; reading the revocations again", Interlocked.Read(ref _revision));
                try
                {
                    var users = RevokedUsers;
                    var enabledBefore = new Dictionary<string, DateTimeOffset>(_enabledSince, StringComparer.Ordinal);
                    var certificatesBefore = RevokedCertificates;
                    var tenantsBefore = _tenants;
                    var bansBefore = new Dictionary<string, (string Scope, string Key, DateTimeOffset Until)>(_loginBans, StringComparer.Ordinal);
                    await LoadAsync(ct).ConfigureAwait(false);
                    foreach (var u in RevokedUsers.Except(users)) Notify(new SharedChange.UserRevoked(u.Split('/', 2)[0], u.Split('/', 2)[1]));
                    // A user revoked and enabled again while the history was missed: only the enabling shows now, and
                    // the sessions from before it still end here.
                    foreach (var (who, since) in _enabledSince)
                        if ((!enabledBefore.TryGetValue(who, out var was) || was != since) && who.Split('/', 2) is [var tenant, var user])
                            Notify(new SharedChange.UserEnabled(tenant, user, since));
                    // This node's own changes that have not reached the store hold here, as before the reload.
                    foreach (var (write, _, _, _, _) in _pending)
                        Apply(new KeyValueEvent(write.IsDelete ? KeyValueEventKind.Delete : KeyValueEventKind.Put, write.Key, write.Value, 0));
                    NotifyCertificateChanges(certificatesBefore);
                    // Bans made or lifted meanwhile (an `isotun unban` on another node): the login throttle hears only these.
                    foreach (var (name, (scope, key, _)) in bansBefore)
                        if (!_loginBans.ContainsKey(name)) Notify(new SharedChange.LoginBanLifted(scope, key));
                    foreach (var (name, (scope, key, until)) in _loginBans)
                        if (!bansBefore.TryGetValue(name, out var known) || known.Until != until) Notify(new SharedChange.LoginBanned(scope, key, until));
                    foreach (var id in _revokedSessions.Keys) Notify(new SharedChange.SessionRevoked(id));
                    if (_tenants is { } tenants && tenants.Revision != tenantsBefore?.Revision) Notify(new SharedChange.TenantsPublished(tenants));
                }
                catch (Exception again) when (again is KeyValueStoreException or OperationCanceledException or IOException)
                {
                    Unreachable(again.Message);
                }
            }
            catch (Exception e)
            {
                // Whatever broke the watch (gRPC reports a lost stream in several ways), it is opened again: a watch
                // loop that ended would leave this node deaf to the others' revocations.
                Unreachable(e is OperationCanceledException ? "the watch stream was cut" : e.Message);
            }
            try
            {
                await Task.Delay(backoff, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
        }
    }

    /// <summary>One change seen in the store: this node's own come back too, and change nothing here.</summary>
    private void Apply(KeyValueEvent e)
    {
        if (e.Key == _prefix + CookieKeysName)
        {
            string? error = "deleted";
            if (e.Kind == KeyValueEventKind.Put && CookieKeyRing.Parse(e.Value.Span, DateTimeOffset.UnixEpoch, out error) is { } ring)
            {
                if (AdoptKeys(ring)) Notify(new SharedChange.CookieKeysRotated(ring));
            }
            else _log.LogError("cluster: {Key} changed to something that is not a cookie key ring ({Error}); the keys in use stay", e.Key, error);
        }
        else if (e.Key == _prefix + SharedTenants.KeyName)
        {
            // Deleting the document changes no node's tenants: each keeps the last it applied.
            if (e.Kind == KeyValueEventKind.Delete) _log.LogWarning("cluster: the shared tenants were deleted from the store; each node keeps the tenants it has");
            else if (AdoptTenants(new SharedTenants(Encoding.UTF8.GetString(e.Value.Span), e.Revision))) Notify(new SharedChange.TenantsPublished(_tenants!));
        }
        else if (e.Key.StartsWith(_prefix + FailuresDir, StringComparison.Ordinal))
        {
            ApplyFailures(e.Key, e.Value.Span, e.Kind == KeyValueEventKind.Delete);
        }
        else if (e.Key.StartsWith(_prefix + CertificatesDir, StringComparison.Ordinal))
        {
            ApplyCertificate(e.Key, e.Value.Span, e.Kind == KeyValueEventKind.Delete);
        }
        else if (e.Key.StartsWith(_prefix + UsersDir, StringComparison.Ordinal))
        {
            var who = e.Key[(_prefix.Length + UsersDir.Length)..];
            if (e.Kind == KeyValueEventKind.Delete)
            {
                _revokedUsers.TryRemove(who, out _);
                _enabledSince.TryRemove(who, out _);
            }
            else if (ApplyUser(who, e.Value.Span) is { } change) Notify(change);
        }
        else if (ParseSession(e.Key, e.Value.Span) is var (id, until))
        {
            if (e.Kind == KeyValueEventKind.Delete) _revokedSessions.TryRemove(id, out _);
            else if (_revokedSessions.TryAdd(id, until)) Notify(new SharedChange.SessionRevoked(id));
        }
        else if (ParseBan(e.Key, e.Value.Span) is var (name, scope, key, bannedUntil))
        {
            // A node's own ban or lift comes back too: applying it again changes nothing there.
            if (e.Kind == KeyValueEventKind.Delete)
            {
                if (_loginBans.TryRemove(name, out _)) Notify(new SharedChange.LoginBanLifted(scope, key));
            }
            else if (!_loginBans.TryGetValue(name, out var known) || known.Until != bannedUntil)
            {
                _loginBans[name] = (scope, key, bannedUntil);
                Notify(new SharedChange.LoginBanned(scope, key, bannedUntil));
            }
        }
    }

    /// <summary>Takes a tenants document newer than the one known (the watch may replay what the join read); false when it was not newer.</summary>
    private bool AdoptTenants(SharedTenants tenants)
    {
        if (_tenants is { } known && known.Revision >= tenants.Revision) return false;
        _tenants = tenants;
        return true;
    }

    private (Guid, DateTimeOffset)? ParseSession(string key, ReadOnlySpan<byte> value)
    {
        if (!key.StartsWith(_prefix + SessionsDir, StringComparison.Ordinal)) return null;
        if (!Guid.TryParseExact(key.AsSpan(_prefix.Length + SessionsDir.Length), "N", out var id)) return null;
        // A delete carries no value; a put's value is the cookie's expiry in Unix seconds.
        return (id, UnixSeconds.Parse(value) ?? DateTimeOffset.MaxValue);
    }

    private void Notify(SharedChange change)
    {
        try
        {
            Changed?.Invoke(change);
        }
        catch (Exception e)
        {
            _log.LogError(e, "cluster: acting on {Change} failed", change);
        }
    }

    private void Reachable()
    {
        if (_connected) return;
        _connected = true;
        _lastError = null;
        _log.LogInformation("cluster: node {Node} reaches the store again; waiting changes written", Node);
        // The watch may still wait on a stream from before the outage that will never deliver: open a new one.
        try
        {
            Volatile.Read(ref _watchRun)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // That watch has ended already.
        }
    }

    private void Unreachable(string why)
    {
        _lastError = why;
        if (!_connected) return;
        _connected = false;
        _log.LogWarning("cluster: node {Node} cannot reach the store ({Error}); the data plane goes on, and changes ({Pending} now) wait until it is back", Node, why, _pending.Count);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        // One last try to write what waits, then stop.
        _wake.Release();
        await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(2)), DrainedAsync()).ConfigureAwait(false);
        _stop.Cancel();
        try
        {
            await Task.WhenAll(_watch, _writer, _leaseLoop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_held is { } held) await held.KeepAlive.DisposeAsync().ConfigureAwait(false);
        // A node that stops on purpose gives its lease back, so its address blocks are free at once.
        try
        {
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            if (_held is { } last) await _store.RevokeLeaseAsync(last.Lease, quick.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeyValueStoreException or OperationCanceledException)
        {
        }
        _stop.Dispose();
        _wake.Dispose();
        // What the store did not take stays in the journal for the next start.
        _journal?.Dispose();
        await _store.DisposeAsync().ConfigureAwait(false);
    }

    private async Task DrainedAsync()
    {
        while (!_pending.IsEmpty && _connected) await Task.Delay(20).ConfigureAwait(false);
    }
}
