using System.Net;

namespace Isotun.State;

/// <summary>What the server must remember across restarts: revoked sessions and sticky leases.</summary>
public interface IStateStore : IDisposable
{
    bool IsRevoked(Guid sessionId);

    void Revoke(Guid sessionId, DateTimeOffset until);

    /// <summary>The address <paramref name="user"/> of <paramref name="tenant"/> last held, if any.</summary>
    IPAddress? GetLease(string tenant, string user);

    void SaveLease(string tenant, string user, IPAddress address);
}
