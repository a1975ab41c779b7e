using Isotun.Protocol.Addressing;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Sites;

/// <summary>The sites of a tenant and its east-west policy, as the config file gives them.</summary>
public sealed class SiteConfigTests
{
    private static ConfigLoadResult Parse(string tenantTail)
    {
        using var temp = new TempDirectory();
        var yaml = "tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n    pool6: fd00:10::/64\n" + tenantTail;
        var result = ServerConfigLoader.Parse(yaml, temp.File("isotun.yaml"));
        Assert.Equal(result.Errors.Count == 0, result.Ok);
        return result;
    }

    private static IEnumerable<string> Errors(string tenantTail) => Parse(tenantTail).Errors.Select(e => e.ToString());

    [Fact]
    public void Sites_and_links_are_read_in_canonical_form()
    {
        var result = Parse("""
                sites:
                  - name: branch-a
                    user: gw-a
                    subnets: [192.168.10.0/24, "fd00:a::/64"]
                  - name: branch-b
                    user: gw-b
                    subnets: [192.168.20.0/24]
                east-west: ["branch-a <-> branch-b", "clients<->branch-a"]
            """);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        var t = result.Config!.Tenants[0];
        Assert.Equal([new SiteConfig("branch-a", "gw-a", [IpNetwork.Parse("192.168.10.0/24"), IpNetwork.Parse("fd00:a::/64")]), new SiteConfig("branch-b", "gw-b", [IpNetwork.Parse("192.168.20.0/24")])],
            t.Sites.Select(s => s with { Subnets = s.Subnets.ToArray() }), new SiteComparer());
        Assert.Equal([new SiteLink("branch-a", "branch-b"), new SiteLink("clients", "branch-a")], t.EastWest!);
    }

    [Theory]
    [InlineData("", null)]
    [InlineData("east-west: all\n", null)]
    [InlineData("east-west: none\n", 0)]
    public void East_west_defaults_to_every_site_and_none_to_no_links(string line, int? links)
    {
        var result = Parse("    sites: [{name: a, user: u, subnets: [192.168.1.0/24]}]\n" + (line.Length > 0 ? "    " + line : ""));
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(links, result.Config!.Tenants[0].EastWest?.Count);
    }

    [Fact]
    public void A_subnet_that_overlaps_a_route_of_the_tenant_is_refused()
    {
        Assert.Equal(
            [
                "tenants[0].sites[0].subnets[1]: 10.30.5.0/24 overlaps 10.30.0.0/16 (tenants[0].routes): a route leads to the tenant's own networks, a site to a client",
                "tenants[0].sites[1].subnets[0]: 10.0.0.0/8 overlaps 10.30.0.0/16 (tenants[0].routes): a route leads to the tenant's own networks, a site to a client",
            ],
            Errors("    routes: [10.30.0.0/16]\n    sites: [{name: a, user: u, subnets: [192.168.1.0/24, 10.30.5.0/24]}, {name: b, user: v, subnets: [10.0.0.0/8]}]\n"));
    }

    [Fact]
    public void A_subnet_over_the_uplinks_own_networks_is_refused()
    {
        // Its route would replace the link's connected route: the upstream router's traffic would go to a client.
        Assert.Equal(
            [
                "tenants[0].sites[0].subnets[0]: 198.18.3.0/24 overlaps 198.18.3.0/24 (tenants[0].uplink.veth.address): an address belongs to one site or client",
                "tenants[0].sites[1].subnets[0]: 198.18.3.2/32 overlaps 198.18.3.0/24 (tenants[0].uplink.veth.address): an address belongs to one site or client",
            ],
            Errors("    uplink: {veth: {peer-namespace: n, address: 198.18.3.1/24, peer-address: 198.18.3.2/24}}\n"
                + "    sites: [{name: a, user: u, subnets: [198.18.3.0/24]}, {name: b, user: v, subnets: [198.18.3.2/32]}]\n"));
    }

    [Fact]
    public void Every_fault_is_listed_with_its_path()
    {
        var errors = Errors("""
                sites:
                  - name: Bad_Name
                    user: gw-a
                    subnets: [192.168.10.0/24]
                  - name: clients
                    user: "bad user"
                    subnets: [192.168.10.128/25, 10.10.0.0/16, 0.0.0.0/0, 192.168.30.1/24, nonsense]
                  - name: twin
                    user: gw-a
                  - name: twin
                    user: gw-c
                    subnets: ["fd00:10::/80"]
                east-west: ["twin <-> nowhere", "twin <-> twin", "twin -> clients"]
            """);
        Assert.Equal(new[]
        {
            "tenants[0].sites[0].name: must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit",
            "tenants[0].sites[1].name: 'clients' stands for the tenant's clients in east-west; choose another name",
            "tenants[0].sites[1].user: not a valid user name",
            "tenants[0].sites[1].subnets[0]: 192.168.10.128/25 overlaps 192.168.10.0/24 (tenants[0].sites[0].subnets[0]): an address belongs to one site or client",
            "tenants[0].sites[1].subnets[1]: 10.10.0.0/16 overlaps 10.10.0.0/24 (tenants[0].pool): an address belongs to one site or client",
            "tenants[0].sites[1].subnets[2]: too wide: at least /8 for IPv4 and /16 for IPv6 (a site holds its own networks, not the default route)",
            "tenants[0].sites[1].subnets[3]: host bits are set; did you mean 192.168.30.0/24?",
            "tenants[0].sites[1].subnets[4]: must be a CIDR such as 192.168.10.0/24 or fd00:10::/64",
            "tenants[0].sites[2].user: 'gw-a' already carries site 'Bad_Name'; give that site all of the user's subnets",
            "tenants[0].sites[2].subnets: required: the networks behind the user's client, e.g. [192.168.10.0/24]",
            "tenants[0].sites[3].name: duplicate site name 'twin'",
            "tenants[0].sites[3].subnets[0]: fd00:10::/80 overlaps fd00:10::/64 (tenants[0].pool6): an address belongs to one site or client",
            "tenants[0].east-west[0]: 'nowhere' is not a site of this tenant (nor clients)",
            "tenants[0].east-west[1]: links a site to itself",
            "tenants[0].east-west[2]: must be a link such as \"branch-a <-> branch-b\" (a site's name, or clients)",
        }.Order(StringComparer.Ordinal), errors.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_same_subnets_in_two_tenants_are_valid_each_in_its_own_namespace()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse("""
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                sites: [{name: hq, user: gw, subnets: [192.168.10.0/24]}]
              - name: initech
                pool: 10.10.0.0/24
                sites: [{name: hq, user: gw, subnets: [192.168.10.0/24]}]
            """, temp.File("isotun.yaml"));
        Assert.True(result.Ok, string.Join("\n", result.Errors));
    }

    private sealed class SiteComparer : IEqualityComparer<SiteConfig>
    {
        public bool Equals(SiteConfig? x, SiteConfig? y) =>
            x is not null && y is not null && x.Name == y.Name && x.User == y.User && x.Subnets.SequenceEqual(y.Subnets);

        public int GetHashCode(SiteConfig s) => s.Name.GetHashCode();
    }
}
