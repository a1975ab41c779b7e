using System.Buffers.Binary;
using Isotun.Protocol.Offload;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// Splitting a TCP super-packet for a peer without GSO (stock openconnect): every segment must be what the
/// kernel's own TSO would have put on the wire, checked field by field and against checksums computed from scratch.
/// </summary>
public class GsoSegmentTests
{
    public static TheoryData<int, int, int, byte> Cases() => new()
    {
        // version, payload bytes, gso_size, flags on the super-packet
        { 4, 10_000, 1348, Segments.Ack | Segments.Psh },
        { 4, 10_000, 1348, Segments.Ack | Segments.Psh | Segments.Fin | Segments.Cwr | Segments.Ece },
        { 4, 3 * 1348, 1348, Segments.Ack | Segments.Psh | Segments.Fin },  // exact multiple: the last segment is full
        { 4, 64_000 - 52, 1348, Segments.Ack },                             // as large as a TUN hands over
        { 4, 1348 + 1, 1348, Segments.Ack | Segments.Cwr },
        { 6, 10_000, 1328, Segments.Ack | Segments.Psh },
        { 6, 10_000, 1328, Segments.Ack | Segments.Psh | Segments.Fin | Segments.Cwr },
        { 6, 2 * 1328, 1328, Segments.Ack | Segments.Fin },
        { 6, 64_000 - 72, 1328, Segments.Ack | Segments.Psh },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_segment_is_a_correct_packet_and_the_payload_survives(int version, int payloadLength, int mss, byte flags)
    {
        var spec = new TcpSpec { Version = version, Flags = flags, Seq = 0x7fff_f000, IpId = 0x4000 };
        var payload = Segments.Payload(payloadLength, seed: payloadLength);
        var (header, packet) = Segments.SuperPacket(spec, payload, mss);
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));

        int ip = version == 4 ? 20 : 40, headers = ip + 32;
        int count = GsoPacket.SegmentCount(header, packet.Length);
        Assert.Equal((payloadLength + mss - 1) / mss, count);

        var joined = new List<byte>();
        var buffer = new byte[headers + mss];
        for (int i = 0; i < count; i++)
        {
            int n = GsoPacket.WriteSegment(packet, header, i, buffer);
            var seg = buffer[..n];
            bool first = i == 0, last = i == count - 1;
            int expectedPayload = last ? payloadLength - i * mss : mss;
            Assert.Equal(headers + expectedPayload, n);

            if (version == 4)
            {
                Assert.Equal(n, BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(2)));
                Assert.Equal((ushort)(0x4000 + i), BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(4)));
                Assert.True(Segments.Ipv4HeaderValid(seg), $"segment {i}: IPv4 header checksum");
                Assert.Equal(packet.AsSpan(6, 4).ToArray(), seg.AsSpan(6, 4).ToArray()); // DF, TTL, protocol
                Assert.Equal(packet.AsSpan(12, 8).ToArray(), seg.AsSpan(12, 8).ToArray());
            }
            else
            {
                Assert.Equal(n - 40, BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(4)));
                Assert.Equal(packet.AsSpan(0, 4).ToArray(), seg.AsSpan(0, 4).ToArray());
                Assert.Equal(packet.AsSpan(6, 34).ToArray(), seg.AsSpan(6, 34).ToArray());
            }

            Assert.Equal(spec.Seq + (uint)(i * mss), BinaryPrimitives.ReadUInt32BigEndian(seg.AsSpan(ip + 4)));
            Assert.Equal(spec.Ack, BinaryPrimitives.ReadUInt32BigEndian(seg.AsSpan(ip + 8)));
            Assert.Equal(spec.Window, BinaryPrimitives.ReadUInt16BigEndian(seg.AsSpan(ip + 14)));
            Assert.Equal(spec.Options, seg.AsSpan(ip + 20, 12).ToArray());
            byte segFlags = seg[ip + 13];
            Assert.Equal(last && (flags & Segments.Fin) != 0, (segFlags & Segments.Fin) != 0);
            Assert.Equal(last && (flags & Segments.Psh) != 0, (segFlags & Segments.Psh) != 0);
            Assert.Equal(first && (flags & Segments.Cwr) != 0, (segFlags & Segments.Cwr) != 0);
            Assert.Equal(flags & (Segments.Ack | Segments.Ece), segFlags & (Segments.Ack | Segments.Ece));
            Assert.True(Segments.TcpChecksumValid(seg), $"segment {i}: TCP checksum");
            joined.AddRange(Segments.TcpPayload(seg).ToArray());
        }
        Assert.Equal(payload, joined.ToArray());
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Segments_equal_what_the_kernel_would_send_byte_for_byte(int version)
    {
        var spec = new TcpSpec { Version = version, Flags = Segments.Ack | Segments.Psh, IpId = 0xfffe, Seq = 0xffff_fc00 }; // ip id and seq wrap
        var payload = Segments.Payload(6000, seed: 3);
        int mss = version == 4 ? 1348 : 1328;
        var (header, packet) = Segments.SuperPacket(spec, payload, mss);
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        var expected = Segments.ExpectedSegments(spec, payload, mss);
        Assert.Equal(expected.Count, GsoPacket.SegmentCount(header, packet.Length));
        var buffer = new byte[2048];
        for (int i = 0; i < expected.Count; i++)
        {
            int n = GsoPacket.WriteSegment(packet, header, i, buffer);
            Assert.Equal(expected[i], buffer[..n]);
        }
    }

    [Fact]
    public void Options_of_any_length_are_copied_to_every_segment()
    {
        // SACK blocks: NOP NOP SACK(2 blocks) = 20 bytes, plus timestamps = 32 bytes of options (TCP header 52).
        byte[] options = [1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, .. Segments.Timestamps(7, 8)];
        var spec = new TcpSpec { Options = options };
        var payload = Segments.Payload(4000, seed: 4);
        var (header, packet) = Segments.SuperPacket(spec, payload, 1000);
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        Assert.Equal(20 + 52, header.HeaderLength);
        var expected = Segments.ExpectedSegments(spec, payload, 1000);
        var buffer = new byte[2048];
        for (int i = 0; i < expected.Count; i++)
            Assert.Equal(expected[i], buffer[..GsoPacket.WriteSegment(packet, header, i, buffer)]);
    }

    [Fact]
    public void A_super_packet_without_payload_is_one_segment()
    {
        var (header, packet) = Segments.SuperPacket(new TcpSpec { Flags = Segments.Ack | Segments.Fin }, [], 1348);
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        Assert.Equal(1, GsoPacket.SegmentCount(header, packet.Length));
        var buffer = new byte[2048];
        int n = GsoPacket.WriteSegment(packet, header, 0, buffer);
        Assert.Equal(Segments.Tcp(new TcpSpec { Flags = Segments.Ack | Segments.Fin }, []), buffer[..n]);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void A_partial_tcp_checksum_is_completed(int version)
    {
        var spec = new TcpSpec { Version = version, Flags = Segments.Ack | Segments.Psh };
        var payload = Segments.Payload(777, seed: 5);
        var (header, packet) = Segments.PartialChecksum(spec, payload);
        Assert.False(Segments.TcpChecksumValid(packet));
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        Assert.Equal(1, GsoPacket.SegmentCount(header, packet.Length));
        var buffer = new byte[2048];
        int n = GsoPacket.WriteSegment(packet, header, 0, buffer);
        Assert.Equal(Segments.Tcp(spec, payload), buffer[..n]);
    }

    [Theory]
    [InlineData(4, 301)]
    [InlineData(4, 300)]
    [InlineData(6, 301)]
    [InlineData(6, 0)]
    public void A_partial_udp_checksum_is_completed(int version, int length)
    {
        var (header, packet) = Segments.PartialUdp(version, Segments.Payload(length, seed: 6));
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        var buffer = new byte[2048];
        int n = GsoPacket.WriteSegment(packet, header, 0, buffer);
        Assert.Equal(packet.Length, n);
        var done = buffer[..n];
        Assert.True(Segments.UdpChecksumValid(done));
        Assert.Equal(packet[..(n - length - 2)], done[..(n - length - 2)]); // only the checksum changed
        Assert.Equal(packet[^length..], done[^length..]);
    }

    [Fact]
    public void A_packet_without_offload_flags_is_copied_unchanged()
    {
        var plain = Segments.Tcp(new TcpSpec(), Segments.Payload(500));
        var header = new VirtioNetHeader();
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, plain, Segments.Mtu));
        var buffer = new byte[2048];
        Assert.Equal(plain, buffer[..GsoPacket.WriteSegment(plain, header, 0, buffer)]);
    }
}
