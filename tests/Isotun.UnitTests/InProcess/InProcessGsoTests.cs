using Isotun.Protocol.Offload;
using Isotun.UnitTests.Offload;

namespace Isotun.UnitTests.InProcess;

/// <summary>GSO super-packets through a whole client and server: whole where both sides negotiated it, cut where not.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessGsoTests(InProcessPki pki)
{
    private const int Mss = 1348; // 20 + 32 + 1348 = the tunnel MTU of 1400

    private static (TcpSpec Spec, byte[] Payload, byte[] Framed) SuperPacket(System.Net.IPAddress source, System.Net.IPAddress destination, int bytes = 20 * Mss)
    {
        var spec = new TcpSpec { Source = source, Destination = destination, Flags = Segments.Ack | Segments.Psh };
        var payload = Segments.Payload(bytes, seed: bytes);
        var (header, packet) = Segments.SuperPacket(spec, payload, Mss);
        return (spec, payload, Packets.Framed(header, packet));
    }

    [Fact]
    public async Task A_tcp_super_packet_from_the_client_reaches_the_server_tun_whole()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var (_, _, framed) = SuperPacket(client.Address, Packets.Far4);

        Assert.True(client.Tun.Inject(framed));
        var got = Packets.TakeFramed(server.Tun(), "the super-packet did not reach the server's TUN");
        var header = VirtioNetHeader.Read(got);
        Assert.True(header.IsGso);
        Assert.Equal(VirtioNetHeader.GsoTcpV4, header.GsoType);
        Assert.Equal(Mss, header.GsoSize);
        Assert.Equal(framed[VirtioNetHeader.Length..], got[VirtioNetHeader.Length..]);
    }

    [Fact]
    public async Task A_tcp_super_packet_from_the_server_reaches_an_isotun_client_whole()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var (_, _, framed) = SuperPacket(Packets.Far4, client.Address);

        Assert.True(server.Tun().Inject(framed));
        var got = Packets.TakeFramed(client.Tun, "the super-packet did not reach the client's TUN");
        Assert.Equal(VirtioNetHeader.GsoTcpV4, VirtioNetHeader.Read(got).GsoType);
        Assert.Equal(framed[VirtioNetHeader.Length..], got[VirtioNetHeader.Length..]);
    }

    [Fact]
    public async Task A_super_packet_for_a_stock_client_is_cut_into_the_segments_tso_would_make()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Extensions = false, Offload = false });
        var (spec, payload, framed) = SuperPacket(Packets.Far4, client.Address);

        Assert.True(server.Tun().Inject(framed));
        foreach (var expected in Segments.ExpectedSegments(spec, payload, Mss))
            Assert.Equal(expected, client.Receive("a segment of the cut super-packet did not arrive"));
    }

    [Fact]
    public async Task A_client_cuts_its_super_packets_for_a_server_without_offload()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400, Offload = false });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var (spec, payload, framed) = SuperPacket(client.Address, Packets.Far4);

        Assert.True(client.Tun.Inject(framed));
        foreach (var expected in Segments.ExpectedSegments(spec, payload, Mss))
            Assert.Equal(expected, Packets.Take(server.Tun(), "a segment of the client's super-packet did not arrive"));
    }

    [Fact]
    public async Task Segments_from_a_stock_client_reach_an_offload_tun_as_the_same_byte_stream()
    {
        // The server may merge consecutive segments (GRO) into super-packets before the TUN write; how many
        // merge depends on how the frames were batched, but the stream the kernel gets is the same.
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Extensions = false, Offload = false });
        var spec = new TcpSpec { Source = client.Address, Destination = Packets.Far4, Flags = Segments.Ack | Segments.Psh };
        var payload = Segments.Payload(40 * Mss, seed: 7);

        foreach (var segment in Segments.ExpectedSegments(spec, payload, Mss)) client.Send(segment);
        var received = new List<byte>();
        while (received.Count < payload.Length)
        {
            var got = Packets.TakeFramed(server.Tun(), $"the stream stopped after {received.Count} of {payload.Length} bytes");
            var header = VirtioNetHeader.Read(got);
            var packet = got[VirtioNetHeader.Length..];
            Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, 1400));
            received.AddRange(Segments.TcpPayload(packet).ToArray());
        }
        Assert.Equal(payload, received.ToArray());
    }

    [Fact]
    public async Task A_udp_super_packet_crosses_whole_to_a_server_tun_with_uso()
    {
        await using var server = await InProcessServer.StartAsync(pki, uso: true, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var framed = Packets.UdpSuperPacket(client.Address, Packets.Far4, Segments.Payload(10 * 1372), 1372);

        Assert.True(client.Tun.Inject(framed));
        var got = Packets.TakeFramed(server.Tun(), "the UDP super-packet did not arrive");
        Assert.Equal(VirtioNetHeader.GsoUdpL4, VirtioNetHeader.Read(got).GsoType);
        Assert.Equal(framed[VirtioNetHeader.Length..], got[VirtioNetHeader.Length..]);
    }

    [Fact]
    public async Task A_udp_super_packet_is_written_as_datagrams_to_a_server_tun_without_uso()
    {
        await using var server = await InProcessServer.StartAsync(pki, uso: false, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var payload = Segments.Payload(10 * 1372 + 100);

        Assert.True(client.Tun.Inject(Packets.UdpSuperPacket(client.Address, Packets.Far4, payload, 1372)));
        var received = new List<byte>();
        for (int i = 0; i < 11; i++)
        {
            var got = Packets.TakeFramed(server.Tun(), $"datagram {i} did not arrive");
            Assert.False(VirtioNetHeader.Read(got).IsGso);
            var datagram = got[VirtioNetHeader.Length..];
            Assert.True(Segments.UdpChecksumValid(datagram), $"datagram {i} has a bad checksum");
            received.AddRange(datagram.AsSpan(28).ToArray());
        }
        Assert.Equal(payload, received.ToArray());
    }
}
