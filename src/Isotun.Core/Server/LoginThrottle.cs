using System.Collections.Concurrent;
using System.Net;
using Isotun.Transport.Listening;

namespace Isotun.Server;

/// <summary>Why a login was not even tried.</summary>
public enum LoginBlock { None, Source, User }

/// <summary>
/// Failed logins, counted per source (an IPv4 address or an IPv6 /64) and per user name (with the group it named): past
/// their thresholds within <c>window</c>, that source or that user is refused for <c>ban-time</c> without a
/// password hash being computed, so a guesser costs the server almost nothing. A success clears the user's count, never
/// the source's. Tables are bounded: idle entries are swept, and when full, new keys are not tracked (never refused).
/// On a cluster node, the failures the other nodes counted add to this node's (<see cref="FailuresElsewhere"/>), and
/// this node's are shared (<see cref="FailuresCounted"/>), so a guesser spread over the nodes gets no more tries.
/// </summary>
public sealed class LoginThrottle(TimeProvider time)
{
    public const int MaxTracked = 100_000;

    internal sealed class Entry
    {
        public int Failures;
        public long FirstFailure;
        public long BannedUntil;
        public int InFlight; // attempts begun (Begin) and not yet ended: they may all still fail
    }

    private readonly ConcurrentDictionary<IPAddress, Entry> _sources = new();
    private readonly ConcurrentDictionary<string, Entry> _users = new(StringComparer.Ordinal);
    private (int UserBanAfter, int SourceBanAfter, TimeSpan Window, TimeSpan BanTime) _settings = (10, 50, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
    private long _lastSweep;

    public void Configure(int userBanAfter, int sourceBanAfter, TimeSpan window, TimeSpan banTime) => _settings = (userBanAfter, sourceBanAfter, window, banTime);

    /// <summary>A ban started here (scope <c>source</c> or <c>user</c>, its key, until when): a cluster node shares it.</summary>
    public Action<string, string, DateTimeOffset>? BanStarted { get; set; }

    /// <summary>An operator lifted a ban here (scope, key): a cluster node shares that too.</summary>
    public Action<string, string>? BanLifted { get; set; }

    /// <summary>The failures other nodes counted for (scope, key) within their windows; a cluster node asks its store.</summary>
    public Func<string, string, int>? FailuresElsewhere { get; set; }

    /// <summary>This node's failures for (scope, key) changed: how many (0: cleared) and until when they count.</summary>
    public Action<string, string, int, DateTimeOffset>? FailuresCounted { get; set; }

    public const string SourceScope = "source", UserScope = "user";

    /// <summary>
    /// Applies a ban made elsewhere (another node of the cluster) until <paramref name="until"/>; false for a scope or
    /// key this node cannot read. Not reported to <see cref="BanStarted"/>.
    /// </summary>
    public bool Apply(string scope, string key, DateTimeOffset until)
    {
        long now = time.GetTimestamp();
        var left = until - time.GetUtcNow();
        if (left <= TimeSpan.Zero) return true;
        long end = now + (long)(left.TotalSeconds * time.TimestampFrequency);
        Entry? e = scope switch
        {
            SourceScope when IPAddress.TryParse(key, out var source) => Track(_sources, SourceKey.Of(source)),
            UserScope => Track(_users, key),
            _ => null,
        };
        if (e is null) return scope is SourceScope or UserScope; // a full table tracks no new key (as for local failures)
        bool counted;
        lock (e)
        {
            e.BannedUntil = Math.Max(e.BannedUntil, end);
            counted = e.Failures > 0;
            e.Failures = 0; // the ban is what they led to
        }
        if (counted) FailuresCounted?.Invoke(scope, key, 0, default);
        return true;
    }

    /// <summary>Lifts a ban lifted elsewhere; not reported to <see cref="BanLifted"/>.</summary>
    public void Lift(string scope, string key)
    {
        if (scope == SourceScope && IPAddress.TryParse(key, out var source)) _sources.TryRemove(SourceKey.Of(source), out _);
        else if (scope == UserScope) _users.TryRemove(key, out _);
    }

    public static string UserKey(string? group, string user) => $"{group ?? ""}/{user}";

    /// <summary>Whether a login from <paramref name="source"/> for <paramref name="userKey"/> may be tried now.</summary>
    public LoginBlock Check(IPAddress? source, string? userKey)
    {
        long now = time.GetTimestamp();
        Sweep(now);
        if (source is not null && _sources.TryGetValue(SourceKey.Of(source), out var s) && Banned(s, now)) return LoginBlock.Source;
        if (userKey is not null && _users.TryGetValue(userKey, out var u) && Banned(u, now)) return LoginBlock.User;
        return LoginBlock.None;
    }

    /// <summary>
    /// Begins a login attempt from <paramref name="source"/> for <paramref name="userKey"/>: refused (its
    /// <see cref="LoginAttempt.Block"/>) when either is banned, or when the attempts under way could together reach its
    /// ban (its failures in the window plus the attempts not yet ended). Without that, a guesser could send many
    /// attempts at once, all past the check before the first failure counts. Dispose the attempt once its failure or
    /// success is counted.
    /// </summary>
    public LoginAttempt Begin(IPAddress? source, string? userKey)
    {
        long now = time.GetTimestamp();
        Sweep(now);
        var (userBanAfter, sourceBanAfter, window, _) = _settings;
        var s = source is null ? null : Track(_sources, SourceKey.Of(source));
        if (!Reserve(s, sourceBanAfter, window, now)) return new LoginAttempt(this, LoginBlock.Source, null, null);
        var u = userKey is null ? null : Track(_users, userKey);
        if (!Reserve(u, userBanAfter, window, now))
        {
            Release(s);
            return new LoginAttempt(this, LoginBlock.User, null, null);
        }
        return new LoginAttempt(this, LoginBlock.None, s, u);
    }

    /// <summary>One login attempt begun by <see cref="Begin"/>; its place among the attempts under way is given back at dispose.</summary>
    public sealed class LoginAttempt : IDisposable
    {
        private readonly LoginThrottle _owner;
        private Entry? _source, _user;

        internal LoginAttempt(LoginThrottle owner, LoginBlock block, Entry? source, Entry? user)
        {
            _owner = owner;
            Block = block;
            _source = source;
            _user = user;
        }

        /// <summary><see cref="LoginBlock.None"/> when the attempt may go on.</summary>
        public LoginBlock Block { get; }

        public void Dispose()
        {
            _owner.Release(Interlocked.Exchange(ref _source, null));
            _owner.Release(Interlocked.Exchange(ref _user, null));
        }
    }

    /// <summary>Takes a place among <paramref name="e"/>'s attempts under way; false when it is banned or full. An untracked key (null: the table was full) is never refused.</summary>
    private bool Reserve(Entry? e, int banAfter, TimeSpan window, long now)
    {
        if (e is null) return true;
        lock (e)
        {
            if (e.BannedUntil > now) return false;
            int failures = e.Failures > 0 && time.GetElapsedTime(e.FirstFailure, now) <= window ? e.Failures : 0;
            if (banAfter > 0 && failures + e.InFlight >= banAfter) return false;
            e.InFlight++;
            return true;
        }
    }

    private void Release(Entry? e)
    {
        if (e is null) return;
        lock (e) e.InFlight--;
    }

    /// <summary>Counts a failure; returns which bans it started.</summary>
    public (bool SourceBanned, bool UserBanned) Failed(IPAddress? source, string? userKey)
    {
        long now = time.GetTimestamp();
        var sourceKey = source is null ? null : SourceKey.Of(source);
        bool sourceBanned = sourceKey is not null && Count(_sources, sourceKey, SourceScope, sourceKey.ToString(), _settings.SourceBanAfter, now);
        bool userBanned = userKey is not null && Count(_users, userKey, UserScope, userKey, _settings.UserBanAfter, now);
        if (BanStarted is { } started && (sourceBanned || userBanned))
        {
            var until = time.GetUtcNow() + _settings.BanTime;
            if (sourceBanned) started(SourceScope, sourceKey!.ToString(), until);
            if (userBanned) started(UserScope, userKey!, until);
        }
        return (sourceBanned, userBanned);
    }

    /// <summary>Clears the user's failures; a ban in force (one another node started meanwhile) stays.</summary>
    public void Succeeded(string userKey)
    {
        if (!_users.TryGetValue(userKey, out var e)) return;
        bool counted;
        lock (e)
        {
            if (e.BannedUntil > time.GetTimestamp()) return;
            counted = e.Failures > 0;
            e.Failures = 0;
            if (e.InFlight == 0) _users.TryRemove(new KeyValuePair<string, Entry>(userKey, e));
        }
        if (counted) FailuresCounted?.Invoke(UserScope, userKey, 0, default);
    }

    /// <summary>Lifts a ban and forgets the failures (the operator's unban); true when there was a ban to lift.</summary>
    public bool UnbanSource(IPAddress source)
    {
        BanLifted?.Invoke(SourceScope, SourceKey.Of(source).ToString());
        return _sources.TryRemove(SourceKey.Of(source), out var e) && Banned(e, time.GetTimestamp());
    }

    /// <inheritdoc cref="UnbanSource"/>
    public bool UnbanUser(string userKey)
    {
        BanLifted?.Invoke(UserScope, userKey);
        return _users.TryRemove(userKey, out var e) && Banned(e, time.GetTimestamp());
    }

    /// <summary>Lifts <paramref name="user"/>'s bans in every tenant (keys of every group); true when there was one.</summary>
    public bool UnbanUserInEveryTenant(string user)
    {
        bool any = false;
        foreach (var key in _users.Keys)
            if (key.Length > user.Length && key.EndsWith(user, StringComparison.Ordinal) && key.IndexOf('/') == key.Length - user.Length - 1)
                any |= UnbanUser(key);
        return any;
    }

    public int BannedSources => _sources.Values.Count(e => Banned(e, time.GetTimestamp()));

    public int BannedUsers => _users.Values.Count(e => Banned(e, time.GetTimestamp()));

    private static Entry? Track<TKey>(ConcurrentDictionary<TKey, Entry> table, TKey key) where TKey : notnull =>
        table.TryGetValue(key, out var e) ? e : table.Count >= MaxTracked ? null : table.GetOrAdd(key, _ => new Entry());

    private static bool Banned(Entry e, long now)
    {
        lock (e) return e.BannedUntil > now;
    }

    private bool Count<TKey>(ConcurrentDictionary<TKey, Entry> table, TKey key, string scope, string name, int banAfter, long now) where TKey : notnull
    {
        var (_, _, window, banTime) = _settings;
        if (banAfter <= 0) return false;
        if (!table.TryGetValue(key, out var e))
        {
            if (table.Count >= MaxTracked) return false;
            e = table.GetOrAdd(key, _ => new Entry());
        }
        int elsewhere = FailuresElsewhere?.Invoke(scope, name) ?? 0; // read outside the lock: it may ask the store's copy
        int counted;
        DateTimeOffset until;
        bool banned;
        lock (e)
        {
            if (e.BannedUntil > now) return false;
            if (e.Failures == 0 || time.GetElapsedTime(e.FirstFailure, now) > window)
            {
                e.Failures = 0;
                e.FirstFailure = now;
            }
            until = time.GetUtcNow() + window - time.GetElapsedTime(e.FirstFailure, now);
            banned = ++e.Failures + elsewhere >= banAfter;
            if (banned)
            {
                e.Failures = 0;
                e.BannedUntil = now + (long)(banTime.TotalSeconds * time.TimestampFrequency);
            }
            counted = e.Failures;
        }
        FailuresCounted?.Invoke(scope, name, counted, until);
        return banned;
    }

    /// <summary>At most once a minute: drops entries neither banned nor failing within the window.</summary>
    private void Sweep(long now)
    {
        long last = Volatile.Read(ref _lastSweep);
        if (last != 0 && time.GetElapsedTime(last, now) < TimeSpan.FromMinutes(1)) return;
        if (Interlocked.CompareExchange(ref _lastSweep, now, last) != last) return;
        var window = _settings.Window;
        SweepTable(_sources, now, window);
        SweepTable(_users, now, window);
    }

    private void SweepTable<TKey>(ConcurrentDictionary<TKey, Entry> table, long now, TimeSpan window) where TKey : notnull
    {
        foreach (var (key, e) in table)
        {
            bool counted;
            lock (e)
            {
                if (e.BannedUntil > now || e.InFlight > 0 || (e.Failures > 0 && time.GetElapsedTime(e.FirstFailure, now) <= window)) continue;
                counted = e.Failures > 0;
                table.TryRemove(new KeyValuePair<TKey, Entry>(key, e));
            }
            // Failures that aged out: the count this node shared goes too.
            if (counted) FailuresCounted?.Invoke(key is IPAddress ? SourceScope : UserScope, key.ToString()!, 0, default);
        }
    }
}
