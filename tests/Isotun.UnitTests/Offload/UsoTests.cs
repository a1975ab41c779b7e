using System.Buffers.Binary;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;
using Isotun.Transport;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// UDP super-packets (USO, gso_type UDP_L4): validated only where allowed (a peer that negotiated `uso`, or our own
/// TUN), refused by every rule the kernel would apply, and cut into the datagrams the kernel would have sent for a
/// peer or a TUN without USO.
/// </summary>
public class UsoTests
{
    private const int Mtu = Segments.Mtu;

    [Theory]
    [InlineData(4, 1372)]
    [InlineData(6, 1352)]
    public void A_udp_super_packet_passes_only_where_allowed_and_hdr_len_is_recomputed(int version, int gsoSize)
    {
        var (header, packet) = Segments.UdpSuperPacket(version, Segments.Payload(10_000), gsoSize);
        var denied = header;
        Assert.Equal(GsoCheckResult.BadType, GsoPacket.Validate(ref denied, packet, Mtu));
        var h = header with { HeaderLength = 999 };
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref h, packet, Mtu, allowUdp: true));
        Assert.Equal((version == 4 ? 20 : 40) + 8, h.HeaderLength);
        Assert.True(GsoPacket.IsUdp(h));
    }

    public static TheoryData<string, Func<VirtioNetHeader, VirtioNetHeader>, GsoCheckResult> Refusals() => new()
    {
        { "no NEEDS_CSUM", h => h with { Flags = 0 }, GsoCheckResult.BadOffsets },
        { "csum_offset of TCP", h => h with { ChecksumOffset = 16 }, GsoCheckResult.BadOffsets },
        { "csum_start inside the IP header", h => h with { ChecksumStart = 10 }, GsoCheckResult.BadOffsets },
        { "gso_size 0", h => h with { GsoSize = 0 }, GsoCheckResult.BadGsoSize },
        { "datagrams above the MTU", h => h with { GsoSize = Mtu - 28 + 1 }, GsoCheckResult.BadGsoSize },
        { "one datagram only (the kernel refuses it)", h => h with { GsoSize = 10_000 }, GsoCheckResult.BadGsoSize },
        { "more datagrams than the kernel cuts one into (10,000 bytes in 1-byte datagrams)", h => h with { GsoSize = 1 }, GsoCheckResult.BadGsoSize },
        { "129 datagrams", h => h with { GsoSize = 10_000 / 129 }, GsoCheckResult.BadGsoSize },
        { "UFO instead of USO", h => h with { GsoType = VirtioNetHeader.GsoUdp }, GsoCheckResult.BadType },
        { "USO|ECN", h => h with { GsoType = VirtioNetHeader.GsoUdpL4 | VirtioNetHeader.GsoEcn }, GsoCheckResult.BadType },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Each_bad_header_is_refused_with_its_reason(string name, Func<VirtioNetHeader, VirtioNetHeader> change, GsoCheckResult expected)
    {
        var (header, packet) = Segments.UdpSuperPacket(4, Segments.Payload(10_000), 1372);
        var h = change(header);
        Assert.True(expected == GsoPacket.Validate(ref h, packet, Mtu, allowUdp: true), name);
    }

    [Fact]
    public void Usos_type_on_a_tcp_packet_and_on_an_ipv4_fragment_is_refused()
    {
        var (tcpHeader, tcp) = Segments.SuperPacket(new TcpSpec(), Segments.Payload(5000), 1348);
        var h = tcpHeader with { GsoType = VirtioNetHeader.GsoUdpL4, ChecksumOffset = 6 };
        Assert.Equal(GsoCheckResult.WrongVersion, GsoPacket.Validate(ref h, tcp, Mtu, allowUdp: true));

        var (udpHeader, udp) = Segments.UdpSuperPacket(4, Segments.Payload(5000), 1372);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(6), 0x2000); // more fragments
        Assert.Equal(GsoCheckResult.BadPacket, GsoPacket.Validate(ref udpHeader, udp, Mtu, allowUdp: true));
    }

    [Theory]
    [InlineData(4, 10_000, 1372)]
    [InlineData(4, 3 * 1372, 1372)]
    [InlineData(4, 64_000 - 28, 1200)]
    [InlineData(6, 10_000, 1352)]
    [InlineData(6, 1352 + 1, 1352)]
    public void Cutting_gives_the_datagrams_the_kernel_would_send(int version, int payloadLength, int gsoSize)
    {
        var payload = Segments.Payload(payloadLength, seed: payloadLength);
        var (header, packet) = Segments.UdpSuperPacket(version, payload, gsoSize);
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Mtu, allowUdp: true));
        int ip = version == 4 ? 20 : 40;
        int count = GsoPacket.SegmentCount(header, packet.Length);
        Assert.Equal((payloadLength + gsoSize - 1) / gsoSize, count);

        var joined = new List<byte>();
        var buffer = new byte[ip + 8 + gsoSize];
        for (int i = 0; i < count; i++)
        {
            int n = GsoPacket.WriteSegment(packet, header, i, buffer);
            var d = buffer[..n];
            int data = Math.Min(gsoSize, payloadLength - i * gsoSize);
            Assert.Equal(ip + 8 + data, n);
            if (version == 4)
            {
                Assert.Equal(n, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(2)));
                Assert.Equal((ushort)(0x1234 + i), BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(4)));
                Assert.True(Segments.Ipv4HeaderValid(d));
            }
            else
            {
                Assert.Equal(n - 40, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(4)));
            }
            Assert.Equal((5353, 53), (BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(ip)), BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(ip + 2))));
            Assert.Equal(8 + data, BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(ip + 4)));
            Assert.True(Segments.UdpChecksumValid(d), $"datagram {i}: bad checksum");
            joined.AddRange(d[(ip + 8)..]);
        }
        Assert.Equal(payload, joined.ToArray());
    }

    [Theory]
    [InlineData(true, true, 1)]   // a peer with uso: whole, one GSO frame
    [InlineData(true, false, 8)]  // a GSO peer without uso: cut
    [InlineData(false, false, 8)] // a stock peer: cut
    public void Our_tuns_udp_super_packets_go_whole_only_to_a_peer_with_uso(bool peerGso, bool peerUso, int frames)
    {
        var payload = Segments.Payload(8 * 1372);
        var (header, packet) = Segments.UdpSuperPacket(4, payload, 1372);
        var buffer = PacketBuffer.Rent(PacketBuffer.Capacity);
        header.Write(buffer.PayloadSpace);
        packet.CopyTo(buffer.PayloadSpace[VirtioNetHeader.Length..]);
        var sent = new List<(CstpPacketType Type, byte[] Frame)>();
        var result = TunFrames.Send(buffer, VirtioNetHeader.Length + packet.Length, tunOffload: true, peerGso, peerUso, Mtu, b =>
        {
            sent.Add(((CstpPacketType)b.Frame.Span[6], b.Frame.Span[CstpFrame.HeaderLength..].ToArray()));
            b.Return();
            return EnqueueResult.Queued;
        }, out bool consumed);
        if (!consumed) buffer.Return();
        Assert.Equal(frames, result.Queued);
        Assert.Equal(frames, sent.Count);
        if (frames == 1)
        {
            Assert.Equal(CstpPacketType.IsotunGso, sent[0].Type);
            Assert.Equal(VirtioNetHeader.GsoUdpL4, VirtioNetHeader.Read(sent[0].Frame).GsoType);
            return;
        }
        Assert.All(sent, f => Assert.Equal(CstpPacketType.Data, f.Type));
        Assert.All(sent, f => Assert.True(Segments.UdpChecksumValid(f.Frame)));
        Assert.Equal(payload, sent.SelectMany(f => f.Frame[28..]).ToArray());
    }
}
