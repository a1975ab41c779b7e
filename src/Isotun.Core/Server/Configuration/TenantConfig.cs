using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.Server.Configuration;

/// <summary>One tenant: a group with its own pool, routes, DNS, tunnel parameters, users and TUN device.</summary>
/// <param name="Name">Group label and value; <c>[a-z0-9][a-z0-9-]{0,30}</c>.</param>
/// <param name="Pool">The IPv4 pool, e.g. <c>10.10.0.0/24</c>, parsed and checked at load.</param>
/// <param name="Routes">Split-include networks, parsed and checked at load; empty means the default route.</param>
/// <param name="Dns">DNS servers pushed to clients.</param>
/// <param name="Mtu">Tunnel MTU.</param>
/// <param name="Dpd">Dead peer detection interval, seconds.</param>
/// <param name="Keepalive">Keepalive interval, seconds.</param>
/// <param name="PasswordFile">Absolute path of the tenant's <see cref="Isotun.Security.PasswordFile"/>, or null.</param>
/// <param name="Device">TUN device name, at most 15 characters.</param>
public sealed record TenantConfig(
    string Name,
    IpNetwork Pool,
    IReadOnlyList<IpNetwork> Routes,
    IReadOnlyList<IPAddress> Dns,
    int Mtu,
    int Dpd,
    int Keepalive,
    string? PasswordFile,
    string Device)
{
    /// <summary>The IPv6 pool (dual stack inside the tunnel), or null for IPv4 only.</summary>
    public IpNetwork? Pool6 { get; init; }

    /// <summary>The network namespace holding the tenant's TUN: <c>isotun-&lt;name&gt;</c> by default, or <see cref="HostNamespace"/>.</summary>
    public string Namespace { get; init; } = "";

    /// <summary>Client CA bundle for this tenant's certificates; null means the server-wide <c>tls.client-ca</c>.</summary>
    public string? ClientCa { get; init; }

    /// <summary>A CRL (PEM or DER) of revoked client certificates, checked at every certificate login and re-read on reload.</summary>
    public string? ClientCrl { get; init; }

    /// <summary>Certificate OUs that may log into this tenant; by default only its own name.</summary>
    public IReadOnlyList<string> AllowedOus { get; init; } = [];

    /// <summary>TLS server names (SNI) that select this tenant.</summary>
    public IReadOnlyList<string> ServerNames { get; init; } = [];

    public int MaxSessions { get; init; } = DefaultMaxSessions;

    /// <summary>Below the server-wide default, so one tenant alone cannot fill the server.</summary>
    public const int DefaultMaxSessions = 512;

    /// <summary>Sessions one user of this tenant may hold at once (ocserv's max-same-clients).</summary>
    public int MaxSessionsPerUser { get; init; } = DefaultMaxSessionsPerUser;

    public const int DefaultMaxSessionsPerUser = 16;

    /// <summary>What a login over <see cref="MaxSessionsPerUser"/> does: end the user's oldest session without a connection, or be refused.</summary>
    public UserLimitAction OverUserLimit { get; init; } = UserLimitAction.ReplaceOldestIdle;

    /// <summary>Per-user rate limit in bytes per second, each direction; 0 means none.</summary>
    public long RateLimit { get; init; }

    /// <summary>Whether clients of this tenant may reach each other through the tunnel.</summary>
    public bool ClientToClient { get; init; }

    /// <summary>How long a user's sticky lease is kept after it was last used; null keeps it forever.</summary>
    public TimeSpan? LeaseLifetime { get; init; }

    public UplinkConfig Uplink { get; init; } = UplinkConfig.None;

    /// <summary>Networks behind users' clients (site gateways); none by default.</summary>
    public IReadOnlyList<SiteConfig> Sites { get; init; } = [];

    /// <summary>
    /// Which sites may reach which (east-west), as two-way links between sites or <see cref="ClientsName"/>; null lets
    /// every site and the tenant's clients reach each other. Sites never reach another tenant's: those live in
    /// another namespace.
    /// </summary>
    public IReadOnlyList<SiteLink>? EastWest { get; init; }

    /// <summary>The name that stands for the tenant's clients that carry no site (road warriors) in <see cref="EastWest"/>.</summary>
    public const string ClientsName = "clients";

    /// <summary>Open the TUN with virtio-net headers and TSO (GSO super-packets); off for kernels or set-ups that misbehave.</summary>
    public bool Offload { get; init; } = true;

    /// <summary>
    /// Queues of the tenant's TUN, each with its own reader thread, and the most TLS connections an Isotun client
    /// may join to one session (stock clients use one).
    /// </summary>
    public int Queues { get; init; } = DefaultQueues;

    /// <summary>One queue per core, up to 8: more queues than cores only add threads.</summary>
    public static int DefaultQueues => Math.Clamp(Environment.ProcessorCount, 1, 8);

    public const string HostNamespace = "host";

    public bool InHostNamespace => Namespace == HostNamespace;

    public IReadOnlyList<string> EffectiveOus => AllowedOus.Count > 0 ? AllowedOus : [Name];
}

/// <summary>
/// How a tenant namespace reaches the tenant's real network. <c>veth</c>: a pair into an existing
/// namespace (<see cref="PeerNamespace"/>); <c>link</c>: an existing link moved in; <c>none</c>.
/// Addresses are CIDRs (address/prefix). The tenant side's default route goes to <see cref="Gateway"/>
/// (for veth: the peer address); for veth the peer side gets a route to the tenant's pools.
/// </summary>
public sealed record UplinkConfig(string Kind, string? PeerNamespace, string? Name, string? PeerName, string? Address, string? PeerAddress, IPAddress? Gateway)
{
    /// <summary>
    /// Answer ARP on the uplink for the tenant's IPv4 clients attached to this server (and announce each one when it
    /// attaches): for an uplink on a segment shared by the nodes of a cluster, so the tenant's network reaches a client
    /// on whichever node serves it.
    /// </summary>
    public bool ProxyArp { get; init; }

    public static readonly UplinkConfig None = new("none", null, null, null, null, null, null);
}

public enum UserLimitAction { ReplaceOldestIdle, Refuse }
