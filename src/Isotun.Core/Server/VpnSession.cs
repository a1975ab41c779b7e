using System.Net;
using Isotun.Protocol.Ip;
using Isotun.Transport;

namespace Isotun.Server;

/// <summary>
/// A logged-in user's session, named by the cookie. It outlives TCP connections: a client that lost its
/// connection comes back with the cookie and gets the same addresses. It ends on a user DISCONNECT or
/// when the cookie expires.
/// </summary>
public sealed class VpnSession(Guid id, TenantRuntime tenant, string user, DateTimeOffset expiresAt)
{
    public Guid Id { get; } = id;
    public string ShortId { get; } = id.ToString("N")[..8];
    public TenantRuntime Tenant { get; } = tenant;
    public string User { get; } = user;
    public DateTimeOffset ExpiresAt { get; } = expiresAt;

    public IPAddress? Address { get; private set; }
    public IPAddress? Address6 { get; private set; }
    public IpKey AddressKey { get; private set; }
    public IpKey AddressKey6 { get; private set; }

    /// <summary>The user's rate limiters (shared by all of the user's sessions), or null when unlimited.</summary>
    public (TokenBucket Rx, TokenBucket Tx)? Limits { get; init; }

    /// <summary>The live tunnel connection, if any. Swapped atomically when a reconnect replaces it.</summary>
    public TunnelConnection? Connection;

    public bool HasAddresses => Address is not null;

    public void Assign(IPAddress address, IPAddress? address6)
    {
        Address = address;
        AddressKey = IpKey.FromAddress(address);
        Address6 = address6;
        if (address6 is not null) AddressKey6 = IpKey.FromAddress(address6);
    }

    /// <summary>Is <paramref name="source"/> one of this session's own addresses?</summary>
    public bool Owns(IpKey source) => source == AddressKey || (Address6 is not null && source == AddressKey6);
}
