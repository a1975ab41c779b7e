using System.Diagnostics;
using System.Net;
using Isotun.Client;
using Isotun.Lab;
using Isotun.Protocol.Ip;

namespace Isotun.UnitTests.Core.Lab;

/// <summary>The load client's traffic: where its echoes go, and what it reads back from the server's packets.</summary>
public class LoadTrafficTests
{
    private static TunnelParameters Tunnel(string address, string? netmask) =>
        new(IPAddress.Parse(address), netmask is null ? null : IPAddress.Parse(netmask), 1400, [], [], 30, 20);

    [Theory]
    [InlineData("10.206.0.57", "255.255.255.0", "10.206.0.1")]
    [InlineData("10.205.3.200", "255.255.240.0", "10.205.0.1")]
    [InlineData("10.0.0.2", "255.255.255.252", "10.0.0.1")]
    [InlineData("10.0.0.1", "255.255.255.0", null)] // the client holds the first address itself
    [InlineData("10.0.0.1", "255.255.255.254", null)]
    [InlineData("10.0.0.1", "255.255.255.255", null)]
    [InlineData("10.0.0.9", null, null)]
    [InlineData("10.0.0.9", "ffff:ffff::", null)]
    public void The_gateway_is_the_first_address_of_the_tunnel_network(string address, string? netmask, string? gateway)
    {
        Assert.Equal(gateway is null ? null : IPAddress.Parse(gateway), LoadTraffic.GatewayOf(Tunnel(address, netmask)));
    }

    [Fact]
    public void The_send_time_is_read_back_from_a_reply_and_short_packets_are_refused()
    {
        var packet = new byte[100];
        var payload = new byte[40];
        long now = Stopwatch.GetTimestamp();
        BitConverter.TryWriteBytes(payload, now);
        Assert.True(BitConverter.IsLittleEndian);
        int n = IcmpEcho.WriteIpv4Request(packet, IPAddress.Parse("10.0.0.2"), IPAddress.Parse("10.0.0.1"), 1, 1, payload);
        Assert.True(LoadTraffic.TryReadSendTime(packet.AsSpan(0, n), out long read));
        Assert.Equal(now, read);
        for (int len = 0; len < 20 + IcmpEcho.HeaderLength + sizeof(long); len++)
            Assert.False(LoadTraffic.TryReadSendTime(packet.AsSpan(0, len), out _));
        packet[0] = 0x4F; // a 60-byte header: the time would lie past the end
        Assert.False(LoadTraffic.TryReadSendTime(packet.AsSpan(0, 70), out _));
    }

    [Theory]
    [InlineData(-1, 1000)]
    [InlineData(10, LoadTraffic.MinPacketBytes - 1)]
    [InlineData(10, LoadTraffic.MaxPacketBytes + 1)]
    public void A_rate_below_zero_or_a_packet_that_does_not_fit_is_refused(int pps, int bytes)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LoadTraffic(pps, bytes));
    }
}
