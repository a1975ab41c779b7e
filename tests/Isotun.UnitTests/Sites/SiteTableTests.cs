using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;
using Isotun.Server;
using Isotun.Server.Configuration;

namespace Isotun.UnitTests.Sites;

/// <summary>The run-time site table: longest-prefix lookup, the east-west policy and the routes each client is given.</summary>
public sealed class SiteTableTests
{
    private static TenantConfig Tenant(IReadOnlyList<SiteLink>? eastWest, params SiteConfig[] sites) =>
        new TenantConfig("acme", IpNetwork.Parse("10.10.0.0/24"), [IpNetwork.Parse("198.18.30.0/24")], [], 1400, 30, 30, null, "isotun-acme") { Sites = sites, EastWest = eastWest };

    private static readonly SiteConfig A = new("a", "gw-a", [IpNetwork.Parse("192.168.0.0/16"), IpNetwork.Parse("fd00:a::/64")]);
    private static readonly SiteConfig B = new("b", "gw-b", [IpNetwork.Parse("192.168.20.0/24")]);
    private static readonly SiteConfig C = new("c", "gw-c", [IpNetwork.Parse("172.20.0.0/16")]);

    private static IpKey Key(string address) => IpKey.FromAddress(IPAddress.Parse(address));

    [Fact]
    public void The_most_specific_subnet_wins_and_other_addresses_match_no_site()
    {
        var table = SiteTable.Build(Tenant(null, A, B));
        Assert.Equal("b", table.Match(Key("192.168.20.7"))?.Name);
        Assert.Equal("a", table.Match(Key("192.168.21.7"))?.Name);
        Assert.Equal("a", table.Match(Key("fd00:a::5"))?.Name);
        Assert.Null(table.Match(Key("10.10.0.5")));
        Assert.Null(table.Match(Key("fd00:b::5")));
        Assert.Equal("b", table.OfUser("gw-b")?.Name);
        Assert.Null(table.OfUser("alice"));
    }

    [Fact]
    public void Without_a_policy_every_site_and_the_clients_reach_each_other()
    {
        var table = SiteTable.Build(Tenant(null, A, B, C));
        var ends = table.Sites.Cast<Site?>().Append(null).ToArray();
        foreach (var x in ends)
            foreach (var y in ends)
                Assert.True(table.Allows(x, y), $"{x?.Name ?? "clients"} -> {y?.Name ?? "clients"}");
    }

    [Fact]
    public void Links_are_two_way_and_nothing_else_passes()
    {
        var table = SiteTable.Build(Tenant([new SiteLink("a", "b"), new SiteLink("clients", "c")], A, B, C));
        Site a = table.Sites[0], b = table.Sites[1], c = table.Sites[2];
        Assert.True(table.Allows(a, b));
        Assert.True(table.Allows(b, a));
        Assert.True(table.Allows(null, c));
        Assert.True(table.Allows(c, null));
        Assert.False(table.Allows(a, c));
        Assert.False(table.Allows(c, b));
        Assert.False(table.Allows(null, a));
        Assert.False(table.Allows(b, null));
    }

    [Fact]
    public void A_site_of_another_table_reaches_nothing_and_never_reads_past_the_links()
    {
        // A packet may read the session's site from the table a reload just made and the tenant's table from before it.
        var before = SiteTable.Build(Tenant([new SiteLink("a", "b")], A, B));
        var after = SiteTable.Build(Tenant([new SiteLink("a", "b")], A, B, C, new SiteConfig("d", "gw-d", [IpNetwork.Parse("172.21.0.0/16")])), before);
        Assert.False(before.Allows(after.Sites[3], null)); // an index past the old table's links threw
        Assert.False(before.Allows(null, after.Sites[3]));
        Assert.False(before.Allows(after.Sites[0], before.Sites[1])); // the same name in another table is another site
        Assert.True(before.Allows(before.Sites[0], before.Sites[1]));
        Assert.True(after.Allows(after.Sites[0], after.Sites[1]));
    }

    [Fact]
    public void A_client_is_given_the_subnets_it_may_reach_and_never_its_own()
    {
        var table = SiteTable.Build(Tenant([new SiteLink("a", "b"), new SiteLink("clients", "c")], A, B, C));
        Assert.Equal(["192.168.20.0/24"], table.RoutesFor(table.OfUser("gw-a")).Select(n => n.ToString()));
        Assert.Equal(["192.168.0.0/16", "fd00:a::/64"], table.RoutesFor(table.OfUser("gw-b")).Select(n => n.ToString()));
        Assert.Equal(["172.20.0.0/16"], table.RoutesFor(null).Select(n => n.ToString()));
        Assert.DoesNotContain(table.RoutesFor(table.OfUser("gw-c")), n => n.ToString() == "172.20.0.0/16");
    }

    [Fact]
    public void A_rebuilt_table_keeps_the_byte_counts_of_a_site_with_the_same_name_and_user()
    {
        var before = SiteTable.Build(Tenant(null, A, B));
        before.Sites[0].CountRx(100);
        before.Sites[1].CountTx(7);
        var after = SiteTable.Build(Tenant(null, A, B with { User = "someone-else" }), before);
        Assert.Equal(100, after.Sites[0].RxBytes);
        Assert.Equal(0, after.Sites[1].TxBytes);
    }

    [Fact]
    public void A_tenant_without_sites_has_the_empty_table()
    {
        var table = SiteTable.Build(Tenant(null));
        Assert.True(table.IsEmpty);
        Assert.Null(table.Match(Key("192.168.1.1")));
        Assert.True(table.Allows(null, null));
    }
}
