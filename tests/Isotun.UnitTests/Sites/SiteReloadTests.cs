using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.InProcess;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Sites;

/// <summary>A reload changes a running tenant's sites: the routes in its namespace follow, and nothing else moves.</summary>
public sealed class SiteReloadTests
{
    private static TenantConfig Tenant(params SiteConfig[] sites) =>
        new TenantConfig("reload-sites", IpNetwork.Parse("10.10.0.0/24"), [], [], 1400, 30, 30, null, "isotun-rs") { Sites = sites, Queues = 1 };

    [Fact]
    public void Added_and_removed_subnets_are_routed_and_unrouted_and_the_policy_swaps_whole()
    {
        var before = Tenant(new SiteConfig("a", "gw-a", [IpNetwork.Parse("192.168.50.0/24")]), new SiteConfig("b", "gw-b", [IpNetwork.Parse("192.168.60.0/24")]));
        var network = new MemoryTenantNetwork(before, uso: true);
        using var tenant = new TenantRuntime(before, new MemoryStateStore(), NullLogger.Instance, network: network);
        tenant.Start();
        Assert.Equal(["192.168.50.0/24", "192.168.60.0/24"], network.Routes.Select(r => r.ToString()).Order());

        var next = Tenant(new SiteConfig("a", "gw-a", [IpNetwork.Parse("192.168.50.0/24"), IpNetwork.Parse("192.168.51.0/24")]), new SiteConfig("c", "gw-c", [IpNetwork.Parse("172.20.0.0/16")])) with
        {
            EastWest = [new SiteLink("a", "c")],
        };
        Assert.Null(tenant.Prepare(next, out var commit));
        Assert.Equal(2, tenant.Sites.Sites.Count); // Prepare changes nothing
        commit!();
        Assert.Equal(["172.20.0.0/16", "192.168.50.0/24", "192.168.51.0/24"], network.Routes.Select(r => r.ToString()).Order());
        Assert.Equal(["a", "c"], tenant.Sites.Sites.Select(s => s.Name));
        Assert.False(tenant.Sites.Allows(null, tenant.Sites.OfUser("gw-a")));
    }
}
