using System.Net;

namespace Isotun.State;

/// <summary>A user's sticky addresses in one tenant, and when they were last handed out.</summary>
public sealed record LeaseRecord(string User, IPAddress? Address, IPAddress? Address6, DateTimeOffset Updated);

/// <summary>What the server must remember across restarts: revoked sessions and sticky leases.</summary>
public interface IStateStore : IDisposable
{
    bool IsRevoked(Guid sessionId);

    void Revoke(Guid sessionId, DateTimeOffset until);

    /// <summary>The addresses <paramref name="user"/> of <paramref name="tenant"/> last held, if any.</summary>
    LeaseRecord? GetLease(string tenant, string user);

    void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6);

    /// <summary>Every stored lease of a tenant, to reserve them at start.</summary>
    IReadOnlyList<LeaseRecord> Leases(string tenant);
}
