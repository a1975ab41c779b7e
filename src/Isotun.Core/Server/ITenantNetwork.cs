using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Tun;

namespace Isotun.Server;

/// <summary>
/// Where a tenant's TUN lives and how it is wired: <see cref="TenantNamespace"/> makes a network namespace, the
/// TUN's queues, addresses and uplink in the kernel; a twin in tests hands out memory TUNs and touches nothing.
/// </summary>
public interface ITenantNetwork
{
    /// <summary>The network namespace the TUN lives in; null for the server's own.</summary>
    string? Name { get; }

    /// <summary>Creates the TUN's queues, gives it the gateway addresses and wires the uplink for <paramref name="pools"/>.</summary>
    ITunQueue[] Setup(IPAddress gateway, int prefix, IPAddress? gateway6, int prefix6, IEnumerable<IpNetwork> pools);

    /// <summary>
    /// Routes <paramref name="add"/> (sites' subnets) to the TUN, and through the uplink's peer back to the tenant,
    /// and removes the routes of <paramref name="remove"/>. Returns what failed, one line each; empty when all went.
    /// </summary>
    IReadOnlyList<string> Route(IEnumerable<IpNetwork> add, IEnumerable<IpNetwork> remove);

    /// <summary>
    /// A pool of one family changed (<paramref name="before"/> or <paramref name="after"/> null when there was or is
    /// none): the TUN takes the new gateway address before it drops the old one, and the uplink's peer routes the new
    /// pool back to the tenant instead of the old one. Returns what failed, one line each; empty when all went.
    /// </summary>
    IReadOnlyList<string> Readdress(IpNetwork? before, IPAddress? beforeGateway, IpNetwork? after, IPAddress? afterGateway);

    /// <summary>
    /// A client's IPv4 address is attached to this server (<paramref name="attached"/>) or no longer is: with an uplink
    /// that answers ARP for its clients, the answer is added and announced, or withdrawn. Returns what failed, or null.
    /// </summary>
    string? Announce(IPAddress address, bool attached);

    /// <summary>Removes what <see cref="Setup"/> made (the TUN's queues are closed by their owner first).</summary>
    void Teardown();
}
