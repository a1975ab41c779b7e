using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.UnitTests.Protocol.Addressing;

public class IpNetworkTests
{
    [Theory]
    [InlineData("10.10.0.0/24", "10.10.0.0", 24, "255.255.255.0")]
    [InlineData("0.0.0.0/0", "0.0.0.0", 0, "0.0.0.0")]
    [InlineData("198.19.1.50/32", "198.19.1.50", 32, "255.255.255.255")]
    [InlineData("172.16.0.0/12", "172.16.0.0", 12, "255.240.0.0")]
    [InlineData("fd00::/64", "fd00::", 64, "ffff:ffff:ffff:ffff::")]
    [InlineData("fd00:1:2:3::/127", "fd00:1:2:3::", 127, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")]
    [InlineData("::/0", "::", 0, "::")]
    [InlineData("2001:db8::1/128", "2001:db8::1", 128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    public void Parses_valid_prefixes(string text, string network, int prefix, string mask)
    {
        Assert.True(IpNetwork.TryParse(text, out var parsed));
        Assert.Equal(IPAddress.Parse(network), parsed.Network);
        Assert.Equal(prefix, parsed.PrefixLength);
        Assert.Equal(IPAddress.Parse(mask), parsed.Netmask);
        Assert.Equal(text, parsed.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("10.10.0.0")]
    [InlineData("10.10.0.1/24")]
    [InlineData("10.10.0.0/33")]
    [InlineData("10.10.0.0/-1")]
    [InlineData("10.10.0.0/+8")]
    [InlineData("10.10.0.0/")]
    [InlineData("/24")]
    [InlineData("10.10.0.0/24/1")]
    [InlineData("10.10.0.0/ 24")]
    [InlineData(" 10.10.0.0/24")]
    [InlineData("10.10/16")]
    [InlineData("10/8")]
    [InlineData("010.0.0.0/8")]
    [InlineData("10.0.0.256/32")]
    [InlineData("10.0.0.0.0/32")]
    [InlineData("0x0a.0.0.0/8")]
    [InlineData("fd00::/129")]
    [InlineData("fd00::1/64")]
    [InlineData("fe80::%eth0/64")]
    [InlineData("fd00:::/64")]
    [InlineData("example.com/24")]
    [InlineData("10.10.0.0/0024")]
    [InlineData("10.10.0.0/24\n")]
    public void Rejects_junk(string text)
    {
        Assert.False(IpNetwork.TryParse(text, out var parsed));
        Assert.Equal(default, parsed);
    }

    [Fact]
    public void Rejects_null() => Assert.False(IpNetwork.TryParse(null!, out _));

    [Theory]
    [InlineData("10.10.0.0/24", "10.10.0.0", true)]
    [InlineData("10.10.0.0/24", "10.10.0.255", true)]
    [InlineData("10.10.0.0/24", "10.10.1.0", false)]
    [InlineData("10.10.0.0/24", "9.255.255.255", false)]
    [InlineData("0.0.0.0/0", "203.0.113.9", true)]
    [InlineData("0.0.0.0/0", "::1", false)]
    [InlineData("fd00::/64", "fd00::ffff:1", true)]
    [InlineData("fd00::/64", "fd00:0:0:1::", false)]
    [InlineData("fd00::/64", "10.10.0.1", false)]
    [InlineData("::/0", "2001:db8::5", true)]
    public void Contains(string network, string address, bool expected)
    {
        Assert.True(IpNetwork.TryParse(network, out var parsed));
        Assert.Equal(expected, parsed.Contains(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("10.10.0.0/24", "10.10.0.128/25", true)]
    [InlineData("10.10.0.0/24", "10.0.0.0/8", true)]
    [InlineData("10.10.0.0/24", "10.10.1.0/24", false)]
    [InlineData("10.10.0.0/24", "10.10.0.0/24", true)]
    [InlineData("0.0.0.0/0", "192.168.0.0/16", true)]
    [InlineData("fd00::/64", "fd00::/48", true)]
    [InlineData("fd00::/64", "fd01::/64", false)]
    [InlineData("0.0.0.0/0", "::/0", false)]
    public void Overlaps_is_symmetric(string a, string b, bool expected)
    {
        Assert.True(IpNetwork.TryParse(a, out var left));
        Assert.True(IpNetwork.TryParse(b, out var right));
        Assert.Equal(expected, left.Overlaps(right));
        Assert.Equal(expected, right.Overlaps(left));
    }

    [Fact]
    public void Value_equality()
    {
        Assert.True(IpNetwork.TryParse("10.10.0.0/24", out var a));
        Assert.True(IpNetwork.TryParse("10.10.0.0/24", out var b));
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.False(default(IpNetwork).Contains(IPAddress.Loopback));
    }
}
