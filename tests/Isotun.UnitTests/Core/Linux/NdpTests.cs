using System.Net;
using Isotun.Linux;

namespace Isotun.UnitTests.Core.Linux;

/// <summary>The unsolicited neighbour advertisement, byte by byte (RFC 4861 §4.4 and §7.2.6).</summary>
public sealed class NdpTests
{
    [Fact]
    public void An_advertisement_names_the_target_with_override_set_and_our_mac_as_its_link_layer_address()
    {
        var message = new byte[Ndp.Length];
        Ndp.Write(message, [0x02, 0x11, 0x22, 0x33, 0x44, 0x55], IPAddress.Parse("fd00:20::2a"));
        Assert.Equal(new byte[]
        {
            136, 0, 0, 0,                 // type, code, checksum (the kernel's)
            0x20, 0, 0, 0,                // override; not router, not solicited
            0xfd, 0x00, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a,
            2, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // target link-layer address, 8 bytes
        }, message);
    }

    [Fact]
    public void Only_ipv6_is_announced() =>
        Assert.Throws<ArgumentException>(() => Ndp.Announce(null, "lo", IPAddress.Parse("10.0.0.1")));
}
