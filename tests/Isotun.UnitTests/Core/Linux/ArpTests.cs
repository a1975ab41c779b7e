using System.Net;
using Isotun.Linux;

namespace Isotun.UnitTests.Core.Linux;

/// <summary>The gratuitous ARP announcement, byte by byte (RFC 826 layout, RFC 5227 announcement: sender = target address).</summary>
public sealed class ArpTests
{
    [Fact]
    public void An_announcement_names_the_address_as_sender_and_target_at_our_mac()
    {
        var frame = new byte[28];
        Arp.Write(frame, [0x02, 0x11, 0x22, 0x33, 0x44, 0x55], IPAddress.Parse("10.20.0.49"));
        Assert.Equal(new byte[]
        {
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 20, 0, 49,
            0, 0, 0, 0, 0, 0, 10, 20, 0, 49,
        }, frame);
    }

    [Fact]
    public void Only_ipv4_is_announced() =>
        Assert.Throws<ArgumentException>(() => Arp.Announce(null, "lo", IPAddress.Parse("fd00::1")));
}
