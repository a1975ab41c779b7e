using System.Net;
using Isotun.Protocol.Ip;

namespace Isotun.Server;

/// <summary>
/// A logged-in user's session, named by the cookie. It outlives TCP connections: a client that lost its
/// connection comes back with the cookie and gets the same address. It ends on a user DISCONNECT or
/// when the cookie expires.
/// </summary>
public sealed class VpnSession(Guid id, TenantRuntime tenant, string user, DateTimeOffset expiresAt)
{
    public Guid Id { get; } = id;
    public string ShortId { get; } = id.ToString("N")[..8];
    public TenantRuntime Tenant { get; } = tenant;
    public string User { get; } = user;
    public DateTimeOffset ExpiresAt { get; } = expiresAt;
    public IPAddress? Address { get; set; }
    public IpKey AddressKey { get; set; }

    /// <summary>The live tunnel connection, if any. Swapped atomically when a reconnect replaces it.</summary>
    public TunnelConnection? Connection;
}
