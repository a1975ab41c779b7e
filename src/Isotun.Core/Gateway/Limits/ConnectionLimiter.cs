using System.Collections.Concurrent;
using System.Net;
using Isotun.Gateway.Configuration;
using Isotun.Transport.Listening;

namespace Isotun.Gateway.Limits;

/// <summary>Why a new connection was refused at accept time, before a byte was read.</summary>
public enum Admission
{
    Accepted,
    GlobalCap,
    IpConcurrency,
    IpRate,
    Banned,
}

/// <summary>
/// Admission control for new connections: a global cap, per-source-address concurrency, a per-source-address token bucket
/// for the connection rate, and a temporary ban once an address piles up failures (bad hellos, timeouts, failed handshakes,
/// rate refusals) within a window. Sources are counted by <see cref="SourceKey"/>: an IPv4 address, or an IPv6 /64. Time comes from a <see cref="TimeProvider"/>, so tests drive it. The address table is
/// bounded: idle entries are swept, and while it is full of live entries (a peer spread over many addresses or IPv6
/// prefixes, keeping them busy or banned), new addresses share one overflow bucket, with <see cref="OverflowShare"/>
/// times one address's rate and burst, and no ban: the gateway stays open to new clients, at a bounded rate, instead
/// of refusing every new address. A full table is swept at most once a second, not at every connection, so such a
/// peer cannot make each accept walk the whole table.
/// </summary>
public sealed class ConnectionLimiter : IConnectionAdmission
{
    public const int DefaultMaxTrackedAddresses = 100_000;

    /// <summary>The overflow bucket takes this many times one address's rate and burst.</summary>
    public const int OverflowShare = 10;

    private readonly ConcurrentDictionary<IPAddress, AddressState> _addresses = new();
    private readonly TimeProvider _time;
    private readonly int _maxTracked;
    private GatewayLimits _limits;
    private static readonly TimeSpan SweepEvery = TimeSpan.FromSeconds(5), FullSweepEvery = TimeSpan.FromSeconds(1);
    private int _active;
    private int _tracked; // the table's size: ConcurrentDictionary.Count takes every lock of the table
    private long _lastSweep;
    private long _sweeps;
    private long _overflowed;
    // The bucket the addresses share while the table is full (its rate and burst OverflowShare times one address's).
    private readonly AddressState _overflow;

    public ConnectionLimiter(GatewayLimits limits, TimeProvider? time = null, int maxTrackedAddresses = DefaultMaxTrackedAddresses)
    {
        _limits = limits;
        _time = time ?? TimeProvider.System;
        _maxTracked = maxTrackedAddresses;
        _lastSweep = _time.GetTimestamp();
        _overflow = new AddressState((_lastSweep, limits.PerIpBurst * OverflowShare));
    }

    public int Active => Volatile.Read(ref _active);

    public int TrackedAddresses => Volatile.Read(ref _tracked);

    /// <summary>How many times the table was swept.</summary>
    internal long Sweeps => Interlocked.Read(ref _sweeps);

    /// <summary>Connections admitted through the overflow bucket, the table being full.</summary>
    public long Overflowed => Interlocked.Read(ref _overflowed);

    /// <summary>Applies new limits (a reload); connections already admitted are not affected.</summary>
    public void Update(GatewayLimits limits) => Volatile.Write(ref _limits, limits);

    /// <summary>Admits a connection from <paramref name="address"/> or says why not. An accepted one must be <see cref="Release"/>d.</summary>
    public Admission TryAdmit(IPAddress address)
    {
        address = SourceKey.Of(address);
        var limits = Volatile.Read(ref _limits);
        long now = _time.GetTimestamp();
        MaybeSweep(now);

        while (true)
        {
            if (StateOf(address, now, limits) is not { } state) return AdmitOverflow(address, now, limits);
            lock (state)
            {
                // Swept away between the look-up and the lock: counted there, it would be counted nowhere.
                if (!Current(address, state)) continue;
                state.LastSeen = now;
                if (state.BannedUntil > now) return Admission.Banned;
                if (state.Active >= limits.PerIpConnections) return Admission.IpConcurrency;
                // Taken first, then checked: accept loops on other cores admit other addresses at the same moment.
                if (Interlocked.Increment(ref _active) > limits.MaxConnections)
                {
                    Interlocked.Decrement(ref _active);
                    return Admission.GlobalCap;
                }
                if (!TakeToken(state, limits.PerIpRate, limits.PerIpBurst, now))
                {
                    Interlocked.Decrement(ref _active);
                    return Admission.IpRate;
                }
                state.Active++;
                return Admission.Accepted;
            }
        }
    }

    /// <summary>Whether <paramref name="state"/> is still <paramref name="address"/>'s entry (call under its lock: the sweep removes under it).</summary>
    private bool Current(IPAddress address, AddressState state) =>
        _addresses.TryGetValue(address, out var current) && ReferenceEquals(current, state);

    /// <summary>A new address while the table is full: the shared bucket's rate, the global cap, and nothing per address.</summary>
    private Admission AdmitOverflow(IPAddress address, long now, GatewayLimits limits)
    {
        lock (_overflow)
        {
            if (Interlocked.Increment(ref _active) > limits.MaxConnections)
            {
                Interlocked.Decrement(ref _active);
                return Admission.GlobalCap;
            }
            if (!TakeToken(_overflow, (double)limits.PerIpRate * OverflowShare, (double)limits.PerIpBurst * OverflowShare, now))
            {
                Interlocked.Decrement(ref _active);
                return Admission.IpRate;
            }
            Interlocked.Increment(ref _overflowed);
            // Remembered, so that its release takes nothing from an entry the address may have by then.
            _overflowOpen.AddOrUpdate(address, 1, static (_, n) => n + 1);
            Interlocked.Increment(ref _overflowOpenCount);
            return Admission.Accepted;
        }
    }

    // Connections open now that came in through the overflow bucket, per address (at most max-connections in all).
    private readonly ConcurrentDictionary<IPAddress, int> _overflowOpen = new();
    private int _overflowOpenCount; // their number, read without a lock on every release

    /// <summary>Takes one of <paramref name="address"/>'s overflow connections off the count; false when it has none.</summary>
    private bool ReleaseOverflow(IPAddress address)
    {
        if (Volatile.Read(ref _overflowOpenCount) == 0) return false;
        lock (_overflow)
        {
            if (!_overflowOpen.TryGetValue(address, out int n)) return false;
            if (n == 1) _overflowOpen.TryRemove(address, out _);
            else _overflowOpen[address] = n - 1;
            Interlocked.Decrement(ref _overflowOpenCount);
            return true;
        }
    }

    /// <summary>Refills <paramref name="state"/>'s bucket for the time since its last refill and takes a token; false when none is left. Call under its lock.</summary>
    private bool TakeToken(AddressState state, double rate, double burst, long now)
    {
        state.Tokens = Math.Min(burst, state.Tokens + _time.GetElapsedTime(state.RefilledAt, now).TotalSeconds * rate);
        state.RefilledAt = now;
        if (state.Tokens < 1) return false;
        state.Tokens -= 1;
        return true;
    }

    AdmissionRefusal? IConnectionAdmission.Admit(IPAddress source) => TryAdmit(source) switch
    {
        Admission.Accepted => null,
        Admission.GlobalCap => AdmissionRefusal.GlobalCap,
        Admission.IpConcurrency => AdmissionRefusal.IpConcurrency,
        Admission.IpRate => AdmissionRefusal.IpRate,
        _ => AdmissionRefusal.Banned,
    };

    public void Release(IPAddress address)
    {
        address = SourceKey.Of(address);
        Interlocked.Decrement(ref _active);
        // An address's connections are alike: one of its overflow ones is taken off first, so that its entry, made
        // since, is not lowered for a connection it never counted.
        if (ReleaseOverflow(address)) return;
        if (_addresses.TryGetValue(address, out var state))
        {
            lock (state)
            {
                if (state.Active > 0) state.Active--;
                state.LastSeen = _time.GetTimestamp();
            }
        }
    }

    /// <summary>Counts a failure against <paramref name="address"/>; true when this one started a ban.</summary>
    public bool RecordFailure(IPAddress address)
    {
        address = SourceKey.Of(address);
        var limits = Volatile.Read(ref _limits);
        if (limits.BanAfterFailures <= 0) return false;
        long now = _time.GetTimestamp();
        if (StateOf(address, now, limits) is not { } state) return false;
        lock (state)
        {
            state.LastSeen = now;
            if (state.BannedUntil > now) return false;
            if (state.Failures == 0 || _time.GetElapsedTime(state.FirstFailureAt, now) > limits.FailureWindow)
            {
                state.Failures = 0;
                state.FirstFailureAt = now;
            }

            if (++state.Failures < limits.BanAfterFailures) return false;
            state.Failures = 0;
            state.BannedUntil = now + (long)(limits.BanTime.TotalSeconds * _time.TimestampFrequency);
            return true;
        }
    }

    public bool IsBanned(IPAddress address)
    {
        address = SourceKey.Of(address);
        if (!_addresses.TryGetValue(address, out var state)) return false;
        lock (state) return state.BannedUntil > _time.GetTimestamp();
    }

    /// <summary>The entry of <paramref name="address"/>, made if there is room; null when the table is full.</summary>
    private AddressState? StateOf(IPAddress address, long now, GatewayLimits limits)
    {
        while (true)
        {
            if (_addresses.TryGetValue(address, out var state)) return state;
            if (Volatile.Read(ref _tracked) >= _maxTracked) return null;
            var fresh = new AddressState((now, limits.PerIpBurst));
            if (_addresses.TryAdd(address, fresh))
            {
                Interlocked.Increment(ref _tracked);
                return fresh;
            }
        }
    }

    /// <summary>Drops entries with no connection, no ban and no recent activity: every 5 s, every second when full.</summary>
    private void MaybeSweep(long now)
    {
        long last = Volatile.Read(ref _lastSweep);
        var every = Volatile.Read(ref _tracked) >= _maxTracked ? FullSweepEvery : SweepEvery;
        if (_time.GetElapsedTime(last, now) < every) return;
        if (Interlocked.CompareExchange(ref _lastSweep, now, last) != last) return;
        Interlocked.Increment(ref _sweeps);
        var limits = Volatile.Read(ref _limits);
        var idle = limits.FailureWindow > TimeSpan.FromSeconds(10) ? limits.FailureWindow : TimeSpan.FromSeconds(10);
        foreach (var (address, state) in _addresses)
        {
            lock (state)
            {
                if (state.Active == 0 && state.BannedUntil <= now && _time.GetElapsedTime(state.LastSeen, now) > idle)
                    if (_addresses.TryRemove(new KeyValuePair<IPAddress, AddressState>(address, state))) Interlocked.Decrement(ref _tracked);
            }
        }
    }

    private sealed class AddressState((long Now, int Burst) start)
    {
        public int Active;
        public double Tokens = start.Burst;
        public long RefilledAt = start.Now;
        public long LastSeen = start.Now;
        public int Failures;
        public long FirstFailureAt;
        public long BannedUntil;
    }
}
