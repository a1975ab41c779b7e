using System.Collections.Concurrent;
using System.Net;

namespace Isotun.State;

/// <summary>In-memory twin of the store, for unit tests.</summary>
public sealed class MemoryStateStore : IStateStore
{
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _revoked = new();
    private readonly ConcurrentDictionary<(string, string), IPAddress> _leases = new();

    public bool IsRevoked(Guid sessionId) => _revoked.ContainsKey(sessionId);

    public void Revoke(Guid sessionId, DateTimeOffset until) => _revoked[sessionId] = until;

    public IPAddress? GetLease(string tenant, string user) => _leases.TryGetValue((tenant, user), out var a) ? a : null;

    public void SaveLease(string tenant, string user, IPAddress address) => _leases[(tenant, user)] = address;

    public void Dispose() { }
}
