using System.Net;
using Isotun.Client;
using Isotun.Protocol.Addressing;

namespace Isotun.UnitTests.Core.Client;

/// <summary>
/// The routes the client puts into its TUN: decided per address family (a family without split-include routes gets
/// its whole space, as its two halves), never a /0 that would replace the host's default route, whatever the server
/// sends.
/// </summary>
public sealed class ClientRoutesTests
{
    private static TunnelParameters Params(string netmask, params string[] split) =>
        new(IPAddress.Parse("10.99.0.2"), IPAddress.Parse(netmask), 1400, [.. split.Select(IpNetwork.Parse)], [], 30, 20);

    private static string[] Routes(TunnelParameters p) => [.. KernelClientNetwork.Routes(p).Select(r => r.ToString())];

    [Fact]
    public void Without_split_include_routes_ipv4_takes_its_whole_space_as_two_halves()
    {
        Assert.Equal(["10.99.0.0/24", "0.0.0.0/1", "128.0.0.0/1"], Routes(Params("255.255.255.0")));
    }

    /// <summary>
    /// A dual-stack tunnel whose server sends only its IPv6 network (an Isotun tenant with pool6 and no routes): IPv4
    /// is still everything. Deciding on both families' routes together sent IPv4 past the tunnel.
    /// </summary>
    [Fact]
    public void Routes_of_one_family_leave_the_other_family_whole()
    {
        var dual = Params("255.255.255.0", "fd00:99::/64") with { Address6 = IPAddress.Parse("fd00:99::2") };
        Assert.Equal(["10.99.0.0/24", "0.0.0.0/1", "128.0.0.0/1", "fd00:99::/64"], Routes(dual));
        Assert.Equal(["10.99.0.0/24", "10.1.0.0/16", "::/1", "8000::/1"],
            Routes(Params("255.255.255.0", "10.1.0.0/16") with { Address6 = IPAddress.Parse("fd00:99::2") }));
        // Without an IPv6 address, no IPv6 route.
        Assert.Equal(["10.99.0.0/24", "10.1.0.0/16"], Routes(Params("255.255.255.0", "10.1.0.0/16")));
    }

    /// <summary>A netmask of 0.0.0.0, or a pushed 0.0.0.0/0 or ::/0, goes in as halves: the default route is never replaced.</summary>
    [Fact]
    public void No_route_is_ever_a_default_route()
    {
        Assert.Equal(["0.0.0.0/1", "128.0.0.0/1"], Routes(Params("0.0.0.0")));
        Assert.Equal(["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"], Routes(Params("255.255.255.255", "0.0.0.0/0", "::/0")));
        Assert.DoesNotContain(Routes(Params("0.0.0.0", "0.0.0.0/0") with { Address6 = IPAddress.Parse("fd00:99::2") }), r => r.EndsWith("/0", StringComparison.Ordinal));
    }
}
