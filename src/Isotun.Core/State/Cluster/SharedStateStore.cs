using System.Net;

namespace Isotun.State.Cluster;

/// <summary>
/// A node's state in a cluster: revoked cookies are shared with every node (<see cref="SharedState"/>) as well as kept
/// in the node's own store; sticky leases stay in the node's own store.
/// </summary>
public sealed class SharedStateStore(IStateStore local, SharedState shared) : IStateStore
{
    public bool IsRevoked(Guid sessionId) => shared.IsSessionRevoked(sessionId) || local.IsRevoked(sessionId);

    public void Revoke(Guid sessionId, DateTimeOffset until)
    {
        local.Revoke(sessionId, until);
        shared.RevokeSession(sessionId, until);
    }

    public LeaseRecord? GetLease(string tenant, string user) => local.GetLease(tenant, user);

    public void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6) => local.SaveLease(tenant, user, address, address6);

    public IReadOnlyList<LeaseRecord> Leases(string tenant) => local.Leases(tenant);

    public TrustRecord? GetTrust(string tenant) => local.GetTrust(tenant);

    public void SaveTrust(string tenant, TrustRecord trust) => local.SaveTrust(tenant, trust);

    public void Dispose() => local.Dispose();
}
