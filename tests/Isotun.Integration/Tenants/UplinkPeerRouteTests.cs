using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Linux;
using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.Server.Configuration;

namespace Isotun.Integration.Tenants;

/// <summary>
/// A veth uplink's far side is the operator's namespace (a service host, a router): the server adds its routes to the
/// tenant's pool and sites there, and never replaces a route that namespace has already for the same network. A site
/// subnet it routes already is left as it is and reported; a pool it routes already stops the tenant's start with
/// the reason.
/// </summary>
public sealed class UplinkPeerRouteTests
{
    private const string Peer = "isotun-upr-peer", TenantNs = "isotun-upr-t", Lan = "upr-lan0";

    private static TenantConfig Tenant(string pool) =>
        new("upr", IpNetwork.Parse(pool), [], [], 1400, 30, 30, null, "upr-tun")
        {
            Namespace = TenantNs,
            Queues = 1,
            Uplink = new UplinkConfig("veth", Peer, "upr-up0", "upr-up1", "198.18.77.1/24", "198.18.77.2/24", IPAddress.Parse("198.18.77.2")),
        };

    private static string Exact(string network) => Run.InNs(Peer, "ip", "-4", "route", "show", "exact", network).Stdout.Trim();

    [SkippableFact]
    public void Routes_the_uplinks_peer_has_already_are_left_in_place()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        foreach (var ns in new[] { Peer, TenantNs }) IpCommand.TryRun("netns", "del", ns);
        IpCommand.Run("netns", "add", Peer);
        try
        {
            // The peer's own LAN, and its own routes to a network and to a pool.
            IpCommand.RunIn(Peer, "link", "add", Lan, "type", "veth", "peer", "name", "upr-lan1");
            IpCommand.RunIn(Peer, "link", "set", Lan, "up");
            IpCommand.RunIn(Peer, "route", "add", "192.168.55.0/24", "dev", Lan);
            IpCommand.RunIn(Peer, "route", "add", "10.78.0.0/24", "dev", Lan);

            var network = new TenantNamespace(Tenant("10.77.0.0/24"));
            var queues = network.Setup(IPAddress.Parse("10.77.0.1"), 24, null, 0, [IpNetwork.Parse("10.77.0.0/24")]);
            try
            {
                Assert.Contains("via 198.18.77.1 dev upr-up1", Exact("10.77.0.0/24"));
                var failed = network.Route([IpNetwork.Parse("192.168.55.0/24"), IpNetwork.Parse("192.168.56.0/24")], []);
                var refused = Assert.Single(failed);
                Assert.StartsWith("uplink route 192.168.55.0/24: namespace isotun-upr-peer routes it already (192.168.55.0/24 dev upr-lan0 ", refused);
                Assert.EndsWith("); not replaced", refused);
                Assert.Contains($"dev {Lan}", Exact("192.168.55.0/24"));
                Assert.Contains("via 198.18.77.1 dev upr-up1", Exact("192.168.56.0/24"));
            }
            finally
            {
                foreach (var q in queues) q.Dispose();
                network.Teardown();
            }

            // A pool the peer routes already: the tenant does not start, and says why.
            var clash = new TenantNamespace(Tenant("10.78.0.0/24"));
            var e = Assert.Throws<InvalidOperationException>(() => clash.Setup(IPAddress.Parse("10.78.0.1"), 24, null, 0, [IpNetwork.Parse("10.78.0.0/24")]));
            Assert.Contains("namespace isotun-upr-peer routes the pool 10.78.0.0/24 already", e.Message);
            clash.Teardown();
            Assert.Contains($"dev {Lan}", Exact("10.78.0.0/24"));
        }
        finally
        {
            foreach (var ns in new[] { TenantNs, Peer }) IpCommand.TryRun("netns", "del", ns);
        }
    }
}
