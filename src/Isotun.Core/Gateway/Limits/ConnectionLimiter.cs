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
/// bounded: idle entries are swept, and when it is full of live entries new addresses are refused as a global cap.
/// </summary>
public sealed class ConnectionLimiter : IConnectionAdmission
{
    public const int DefaultMaxTrackedAddresses = 100_000;

    private readonly ConcurrentDictionary<IPAddress, AddressState> _addresses = new();
    private readonly TimeProvider _time;
    private readonly int _maxTracked;
    private GatewayLimits _limits;
    private int _active;
    private long _lastSweep;

    public ConnectionLimiter(GatewayLimits limits, TimeProvider? time = null, int maxTrackedAddresses = DefaultMaxTrackedAddresses)
    {
        _limits = limits;
        _time = time ?? TimeProvider.System;
        _maxTracked = maxTrackedAddresses;
        _lastSweep = _time.GetTimestamp();
    }

    public int Active => Volatile.Read(ref _active);

    public int TrackedAddresses => _addresses.Count;

    /// <summary>Applies new limits (a reload); connections already admitted are not affected.</summary>
    public void Update(GatewayLimits limits) => Volatile.Write(ref _limits, limits);

    /// <summary>Admits a connection from <paramref name="address"/> or says why not. An accepted one must be <see cref="Release"/>d.</summary>
    public Admission TryAdmit(IPAddress address)
    {
        address = SourceKey.Of(address);
        var limits = Volatile.Read(ref _limits);
        long now = _time.GetTimestamp();
        MaybeSweep(now);

        if (!_addresses.TryGetValue(address, out var state))
        {
            if (_addresses.Count >= _maxTracked) return Admission.GlobalCap;
            state = _addresses.GetOrAdd(address, static (_, s) => new AddressState(s), (now, limits.PerIpBurst));
        }

        lock (state)
        {
            state.LastSeen = now;
            if (state.BannedUntil > now) return Admission.Banned;
            if (Volatile.Read(ref _active) >= limits.MaxConnections) return Admission.GlobalCap;
            if (state.Active >= limits.PerIpConnections) return Admission.IpConcurrency;

            double elapsed = _time.GetElapsedTime(state.RefilledAt, now).TotalSeconds;
            state.Tokens = Math.Min(limits.PerIpBurst, state.Tokens + elapsed * limits.PerIpRate);
            state.RefilledAt = now;
            if (state.Tokens < 1) return Admission.IpRate;
            state.Tokens -= 1;
            state.Active++;
            Interlocked.Increment(ref _active);
            return Admission.Accepted;
        }
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
        if (!_addresses.TryGetValue(address, out var state))
        {
            if (_addresses.Count >= _maxTracked) return false;
            state = _addresses.GetOrAdd(address, static (_, s) => new AddressState(s), (now, limits.PerIpBurst));
        }

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

    /// <summary>Drops entries with no connection, no ban and no recent activity, at most every few seconds.</summary>
    private void MaybeSweep(long now)
    {
        long last = Volatile.Read(ref _lastSweep);
        if (_time.GetElapsedTime(last, now) < TimeSpan.FromSeconds(5) && _addresses.Count < _maxTracked) return;
        if (Interlocked.CompareExchange(ref _lastSweep, now, last) != last) return;
        var limits = Volatile.Read(ref _limits);
        var idle = limits.FailureWindow > TimeSpan.FromSeconds(10) ? limits.FailureWindow : TimeSpan.FromSeconds(10);
        foreach (var (address, state) in _addresses)
        {
            lock (state)
            {
                if (state.Active == 0 && state.BannedUntil <= now && _time.GetElapsedTime(state.LastSeen, now) > idle)
                    _addresses.TryRemove(new KeyValuePair<IPAddress, AddressState>(address, state));
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
