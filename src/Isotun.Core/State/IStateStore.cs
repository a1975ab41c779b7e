using System.Net;

namespace Isotun.State;

/// <summary>A user's sticky addresses in one tenant, and when they were last handed out.</summary>
public sealed record LeaseRecord(string User, IPAddress? Address, IPAddress? Address6, DateTimeOffset Updated);

/// <summary>
/// Whom a tenant trusted with a client certificate when the server last started or reloaded: the thumbprints of the CAs
/// (its own or the server's) and the OUs, each sorted, and since when certificate logins count (a narrowing since then
/// refuses the cookies of earlier certificate logins).
/// </summary>
public sealed record TrustRecord(IReadOnlyList<string> Cas, IReadOnlyList<string> Ous, DateTimeOffset Since)
{
    /// <summary>Whether <paramref name="now"/> trusts less than this did: a CA or an OU is no longer in it.</summary>
    public bool NarrowedBy(TrustRecord now) => Cas.Except(now.Cas).Any() || Ous.Except(now.Ous).Any();

    /// <summary>The same CAs and OUs (since when aside).</summary>
    public bool SameTrust(TrustRecord other) => Cas.SequenceEqual(other.Cas) && Ous.SequenceEqual(other.Ous);

    /// <summary>
    /// <see cref="Since"/> as the stores keep it, in whole seconds, rounded up: a login in the second of a narrowing
    /// but before it stays refused after a restart, as it was before.
    /// </summary>
    public long SinceSeconds => Since.ToUnixTimeSeconds() + (Since.Ticks % TimeSpan.TicksPerSecond != 0 ? 1 : 0);
}

/// <summary>
/// What the server must remember across restarts: revoked sessions, sticky leases, and whom each tenant trusted. Calls may block on the disk:
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

    /// <summary>Whom the tenant trusted at the last start or reload; null when never recorded.</summary>
    TrustRecord? GetTrust(string tenant);

    /// <summary>Records (or replaces) whom the tenant trusts now.</summary>
    void SaveTrust(string tenant, TrustRecord trust);
}
