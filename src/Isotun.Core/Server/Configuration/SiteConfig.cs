using Isotun.Protocol.Addressing;

namespace Isotun.Server.Configuration;

/// <summary>
/// A site: networks that live behind one user's client (a site gateway), like ocserv's and OpenVPN's <c>iroute</c>.
/// The server routes <see cref="Subnets"/>, inside the tenant's namespace, to the session that holds
/// <see cref="User"/>, and accepts sources inside them from that session only.
/// </summary>
/// <param name="Name">The site's name within its tenant: <c>[a-z0-9][a-z0-9-]{0,30}</c>, not <c>clients</c>.</param>
/// <param name="User">The user (password login or certificate UID) whose session carries the site.</param>
/// <param name="Subnets">IPv4 or IPv6 networks, parsed and checked at load.</param>
public sealed record SiteConfig(string Name, string User, IReadOnlyList<IpNetwork> Subnets);

/// <summary>Two ends that may exchange packets: site names, or <see cref="TenantConfig.ClientsName"/> for the tenant's other clients.</summary>
public sealed record SiteLink(string A, string B)
{
    public bool Joins(string x, string y) => (A == x && B == y) || (A == y && B == x);

    public override string ToString() => $"{A} <-> {B}";
}
