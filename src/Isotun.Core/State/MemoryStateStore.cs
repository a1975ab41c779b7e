using System.Collections.Concurrent;
using System.Net;

namespace Isotun.State;

/// <summary>In-memory twin of the store, for unit tests.</summary>
public sealed class MemoryStateStore(TimeProvider? time = null) : IStateStore
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _revoked = new();
    private readonly ConcurrentDictionary<(string Tenant, string User), LeaseRecord> _leases = new();
    private readonly ConcurrentDictionary<string, TrustRecord> _trust = new(StringComparer.Ordinal);

    public bool IsRevoked(Guid sessionId) => _revoked.ContainsKey(sessionId);

    public void Revoke(Guid sessionId, DateTimeOffset until)
    {
        Interlocked.Increment(ref _revocationsWritten);
        _revoked[sessionId] = until;
    }

    private int _revocationsWritten;

    /// <summary>How many revocations were written (a file-backed store syncs the disk for each).</summary>
    public int RevocationsWritten => Volatile.Read(ref _revocationsWritten);

    public LeaseRecord? GetLease(string tenant, string user) => _leases.TryGetValue((tenant, user), out var l) ? l : null;

    public void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6) =>
        _leases[(tenant, user)] = new LeaseRecord(user, address, address6, _time.GetUtcNow());

    public IReadOnlyList<LeaseRecord> Leases(string tenant) =>
        _leases.Where(kv => kv.Key.Tenant == tenant).Select(kv => kv.Value)
            .OrderBy(l => l.Updated).ThenBy(l => l.User, StringComparer.Ordinal).ToList();

    public TrustRecord? GetTrust(string tenant) => _trust.TryGetValue(tenant, out var t) ? t : null;

    // Kept to the second (rounded up), as the SQLite store keeps it.
    public void SaveTrust(string tenant, TrustRecord trust) =>
        _trust[tenant] = trust with { Cas = [.. trust.Cas], Ous = [.. trust.Ous], Since = DateTimeOffset.FromUnixTimeSeconds(trust.SinceSeconds) };

    public void Dispose() { }
}
