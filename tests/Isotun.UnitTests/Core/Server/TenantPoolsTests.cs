using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Server;

namespace Isotun.UnitTests.Core.Server;

/// <summary>On a cluster node a client's IPv6 address is its IPv4 address's place in pool6: the same on every node.</summary>
public sealed class TenantPoolsTests
{
    [Theory]
    [InlineData("10.20.0.0/24", "fd00:20::/64", "10.20.0.2", "fd00:20::2")]
    [InlineData("10.20.0.0/24", "fd00:20::/120", "10.20.0.254", "fd00:20::fe")]
    [InlineData("10.20.0.0/16", "fd00:20:0:1::/64", "10.20.1.7", "fd00:20:0:1::107")]
    [InlineData("10.20.4.0/22", "fd00::100:0/104", "10.20.5.0", "fd00::100:100")]
    public void The_ipv6_address_sits_where_the_ipv4_one_does(string pool, string pool6, string v4, string v6) =>
        Assert.Equal(IPAddress.Parse(v6), new TenantPools(IpNetwork.Parse(pool), IpNetwork.Parse(pool6)).Mapped6(IPAddress.Parse(v4)));

    [Fact]
    public void Without_a_pool6_or_past_its_end_there_is_none()
    {
        Assert.Null(new TenantPools(IpNetwork.Parse("10.20.0.0/24"), null).Mapped6(IPAddress.Parse("10.20.0.2")));
        // A /120 holds 256 addresses; 10.20.1.2 is the 259th of a /16.
        Assert.Null(new TenantPools(IpNetwork.Parse("10.20.0.0/16"), IpNetwork.Parse("fd00:20::/120")).Mapped6(IPAddress.Parse("10.20.1.2")));
    }
}
