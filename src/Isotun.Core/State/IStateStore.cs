using System.Net;

namespace Isotun.State;

/// <summary>A user's sticky addresses in one tenant, and when they were last handed out.</summary>
public sealed record LeaseRecord(string User, IPAddress? Address, IPAddress? Address6, DateTimeOffset Updated);

/// <summary>
/// What the server must remember across restarts: revoked sessions and sticky leases. Calls may block on the disk:
/// they belong to the control plane (login, CONNECT, session end, tenant start), never to the packet path.
/// Safe to call from several threads.
/// </summary>
public interface IStateStore : IDisposable
{
    bool IsRevoked(Guid sessionId);

    /// <summary>Revokes a session's cookie; <paramref name="until"/> is when the cookie expires anyway.</summary>
    void Revoke(Guid sessionId, DateTimeOffset until);

    /// <summary>The addresses <paramref name="user"/> of <paramref name="tenant"/> last held, if any.</summary>
    LeaseRecord? GetLease(string tenant, string user);

    /// <summary>Stores (or replaces) the user's sticky addresses, stamped with the current time.</summary>
    void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6);

    /// <summary>Every stored lease of a tenant, oldest first, to reserve them at start.</summary>
    IReadOnlyList<LeaseRecord> Leases(string tenant);
}
