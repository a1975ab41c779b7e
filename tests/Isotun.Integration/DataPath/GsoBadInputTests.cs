using System.Buffers.Binary;
using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;
using Isotun.Server;

namespace Isotun.Integration.DataPath;

/// <summary>
/// A peer's GSO frames are untrusted. A raw TLS client in the lab's client namespace logs in (cookie from
/// `isotun connect --authenticate`), opens a tunnel with or without the gso extension, and sends IsotunGso frames
/// it should not: each is dropped and counted by reason, the connection carries on, and after
/// <see cref="TunnelConnection.MaxBadGso"/> of them the next one closes it. The lab's own client is never touched.
/// </summary>
[Collection(DataPathCollection.Name)]
public sealed class GsoBadInputTests(DataPathFixture fx)
{
    private const ushort ClosedPort = 9999; // nothing listens there: the service host answers with a reset
    private LabLayout L => fx.Layout;

    [SkippableFact]
    public async Task Gso_frames_without_the_extension_are_dropped_counted_and_repeats_close_the_connection()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var head = await c.ConnectTunnelAsync(fx.Cookie(), extensions: null);
        Assert.Null(head.Headers.Get(IsotunExtensions.Header)); // nothing offered, nothing granted
        var echo = await c.EchoAsync(L.TunnelGateway, 1);
        Assert.True(echo is { Type: CstpPacketType.Data }, "no echo reply as a plain DATA frame");

        double dropped = Drops("gso-not-negotiated"), closed = ClosedBadFrame();
        var (header, packet) = Packets.SuperPacket(c.Address, new IPEndPoint(L.ServiceIp, ClosedPort), 40001, segments: 8);
        for (int i = 1; i <= TunnelConnection.MaxBadGso; i++)
        {
            // A plain packet in a GSO frame counts the same as a super-packet: the frame type was not negotiated.
            if (i % 2 == 0) await c.SendGsoAsync(new VirtioNetHeader(), RawCstpClient.EchoRequest(c.Address, L.TunnelGateway, 0x150, 7));
            else await c.SendGsoAsync(header, packet);
            // Dropped, not fatal: the next echo still comes back (and, being behind it, shows it was handled).
            Assert.NotNull(await c.EchoAsync(L.TunnelGateway, (ushort)(100 + i)));
            Assert.Equal(dropped + i, Drops("gso-not-negotiated"));
        }

        await c.SendGsoAsync(header, packet);
        Assert.True(await c.WaitForCloseAsync(), "the connection stayed open after repeated GSO frames");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => ClosedBadFrame() == closed + 1), "close not counted as bad-frame");
        Assert.Equal(dropped + TunnelConnection.MaxBadGso + 1, Drops("gso-not-negotiated"));
        AssertWitnessUnharmed();
    }

    [SkippableFact]
    public async Task Bad_gso_headers_from_a_peer_that_negotiated_gso_are_dropped_counted_and_repeats_close_the_connection()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var head = await c.ConnectTunnelAsync(fx.Cookie(), extensions: "gso");
        Assert.Equal(IsotunExtension.Gso, IsotunExtensions.Parse(head.Headers.Get(IsotunExtensions.Header)));

        // Good frames first. A plain packet in a GSO frame; a GSO peer gets everything back as GSO frames.
        double bad = Drops("bad-gso-header"), closed = ClosedBadFrame();
        var echo = await c.EchoAsync(L.TunnelGateway, 1, asGsoFrame: true);
        Assert.True(echo is { Type: CstpPacketType.IsotunGso }, "no echo reply as an IsotunGso frame");
        // A valid TCP super-packet reaches the service host (the kernel segments it on the way): its reset comes back.
        var (good, packet) = Packets.SuperPacket(c.Address, new IPEndPoint(L.ServiceIp, ClosedPort), 40002, segments: 8);
        await c.SendGsoAsync(good, packet);
        Assert.NotNull(await c.ReceiveAsync(p => IsReset(p, L.ServiceIp, ClosedPort, 40002)));
        Assert.Equal(bad, Drops("bad-gso-header"));

        var cases = new (string Name, VirtioNetHeader Header)[]
        {
            ("TCPV6 on an IPv4 packet", good with { GsoType = VirtioNetHeader.GsoTcpV6 }),
            ("csum_start past the end", good with { ChecksumStart = (ushort)(packet.Length + 100) }),
            ("csum_offset past the end", good with { ChecksumOffset = 60000 }),
            ("gso_size above the MTU", good with { GsoSize = (ushort)(c.Mtu + 1) }),
            ("UDP_L4 (USO) on TCP", good with { GsoType = VirtioNetHeader.GsoUdpL4 }),
            ("TCPV4 with ECN", good with { GsoType = VirtioNetHeader.GsoTcpV4 | VirtioNetHeader.GsoEcn }),
            ("gso_size 0", good with { GsoSize = 0 }),
            ("unknown flag bits", good with { Flags = 0x81 }),
        };
        Assert.True(cases.Length >= TunnelConnection.MaxBadGso);
        for (int i = 0; i < TunnelConnection.MaxBadGso; i++)
        {
            await c.SendGsoAsync(cases[i].Header, packet);
            Assert.True(await c.EchoAsync(L.TunnelGateway, (ushort)(100 + i), asGsoFrame: true) is not null, $"{cases[i].Name}: the connection did not carry on");
            Assert.True(bad + i + 1 == Drops("bad-gso-header"), $"{cases[i].Name}: not counted as bad-gso-header");
        }
        // A super-packet cut short (its IP length no longer matches) is refused too, and is one too many.
        await c.SendGsoAsync(good, packet[..^1]);
        Assert.True(await c.WaitForCloseAsync(), "the connection stayed open after repeated bad GSO headers");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => ClosedBadFrame() == closed + 1), "close not counted as bad-frame");
        Assert.Equal(bad + TunnelConnection.MaxBadGso + 1, Drops("bad-gso-header"));
        AssertWitnessUnharmed();
    }

    [SkippableFact]
    public async Task A_plain_packet_above_the_mtu_in_a_gso_frame_is_dropped_as_oversize_like_a_data_frame()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        await c.ConnectTunnelAsync(fx.Cookie(), extensions: "gso");
        double oversize = Drops("oversize"), bad = Drops("bad-gso-header");

        // Without GSO the header cannot make a packet larger than the MTU acceptable: the peer's TUN never makes one.
        await c.SendGsoAsync(new VirtioNetHeader(), RawCstpClient.EchoRequest(c.Address, L.TunnelGateway, 0x150, 1, totalLength: 3000));
        await c.SendGsoAsync(new VirtioNetHeader(), RawCstpClient.EchoRequest(c.Address, L.TunnelGateway, 0x150, 2));
        var reply = await c.ReceiveAsync(p => RawCstpClient.IsEchoReply(p, 0x150, 1) || RawCstpClient.IsEchoReply(p, 0x150, 2));
        Assert.NotNull(reply);
        Assert.True(RawCstpClient.IsEchoReply(reply.Value.Packet, 0x150, 2), "the oversize echo request reached the tunnel network and was answered");
        Assert.Equal(oversize + 1, Drops("oversize"));
        Assert.Equal(bad, Drops("bad-gso-header")); // a size drop, not a header fault: it does not count towards closing
        AssertWitnessUnharmed();
    }

    private double Drops(string reason) => fx.Metric("isotun_tunnel_drops_total", "tenant=\"demo\"", $"reason=\"{reason}\"");

    private double ClosedBadFrame() => fx.Metric("isotun_connections_closed_total", "reason=\"bad-frame\"");

    private void AssertWitnessUnharmed()
    {
        Assert.Equal(fx.ClientAddress, fx.Lab!.ClientAddress());
        TunnelTests.AssertPing(L.ClientNs, L.ServiceIp);
        Assert.DoesNotContain(fx.LogLines("client"), l => l.Contains("connection lost"));
        Assert.True(LabProcess.Pid(L, "server") is int pid && LabProcess.IsAlive(pid), "the server died");
    }

    private static bool IsReset(byte[] p, IPAddress from, ushort fromPort, ushort toPort) =>
        p.Length >= 40 && p[0] >> 4 == 4 && p[9] == 6 && p.AsSpan(12, 4).SequenceEqual(from.GetAddressBytes())
        && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan((p[0] & 0xf) * 4)) == fromPort
        && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan((p[0] & 0xf) * 4 + 2)) == toPort
        && (p[(p[0] & 0xf) * 4 + 13] & 0x04) != 0;
}
