using System.Buffers.Binary;
using Isotun.Protocol.Offload;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// A peer's virtio-net header is untrusted: it is checked against the packet it describes before the kernel
/// sees it. Every refusal has its own outcome (counted by the server); what passes is normalised for a TUN write.
/// </summary>
public class GsoValidateTests
{
    private const int Mtu = Segments.Mtu;
    private static readonly byte[] Payload = Segments.Payload(5000);

    private static (VirtioNetHeader Header, byte[] Packet) V4() => Segments.SuperPacket(new TcpSpec(), Payload, 1348);
    private static (VirtioNetHeader Header, byte[] Packet) V6() => Segments.SuperPacket(new TcpSpec { Version = 6 }, Payload, 1328);

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void A_kernel_made_super_packet_passes_and_hdr_len_is_recomputed(int version)
    {
        var (header, packet) = version == 4 ? V4() : V6();
        int expectedHeaders = (version == 4 ? 20 : 40) + 32; // TCP with timestamps
        foreach (ushort hint in new ushort[] { 0, 1, (ushort)expectedHeaders, (ushort)(expectedHeaders + 1348), 65535 })
        {
            var h = header with { HeaderLength = hint };
            Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref h, packet, Mtu));
            Assert.Equal(expectedHeaders, h.HeaderLength);
            Assert.Equal(header.GsoSize, h.GsoSize);
            Assert.Equal(header.GsoType, h.GsoType);
            Assert.Equal((version == 4 ? 20 : 40, 16), (h.ChecksumStart, h.ChecksumOffset));
        }
    }

    [Fact]
    public void Data_valid_next_to_needs_csum_is_accepted()
    {
        var (header, packet) = V4();
        header.Flags |= VirtioNetHeader.FlagDataValid;
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Mtu));
    }

    [Fact]
    public void Segments_that_fill_the_mtu_pass_and_one_byte_more_does_not()
    {
        // Headers (20 IPv4 + 32 TCP with timestamps) + gso_size must fit the MTU, as a real peer's segments do.
        var (header, packet) = V4();
        var atMtu = header with { GsoSize = Mtu - 52 };
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref atMtu, packet, Mtu));
        foreach (ushort size in new ushort[] { 0, 1, GsoPacket.MinTcpGsoSize - 1, Mtu - 51, Mtu, Mtu + 1, 9000, 65535 })
        {
            var h = header with { GsoSize = size };
            Assert.Equal(GsoCheckResult.BadGsoSize, GsoPacket.Validate(ref h, packet, Mtu));
        }
        // The least: Linux's least MSS. Below it one frame would be cut into tens of thousands of packets.
        var least = header with { GsoSize = GsoPacket.MinTcpGsoSize };
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref least, packet, Mtu));
        // The bound is the connection's MTU, not a constant.
        var jumbo = header with { GsoSize = 8948 };
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref jumbo, packet, 9000));
    }

    [Fact]
    public void Plain_packets_pass_with_gso_fields_cleared()
    {
        var plain = Segments.Tcp(new TcpSpec(), Segments.Payload(100));
        var h = new VirtioNetHeader { HeaderLength = 999, GsoSize = 1234, ChecksumStart = 77, ChecksumOffset = 5 };
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref h, plain, Mtu));
        Assert.Equal((0, 0), (h.HeaderLength, h.GsoSize));

        var icmp = Segments.Icmp();
        var none = new VirtioNetHeader();
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref none, icmp, Mtu));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Partial_checksums_without_gso_pass_for_tcp_and_udp(int version)
    {
        var (tcpHeader, tcp) = Segments.PartialChecksum(new TcpSpec { Version = version }, Segments.Payload(300));
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref tcpHeader, tcp, Mtu));
        var (udpHeader, udp) = Segments.PartialUdp(version, Segments.Payload(301));
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref udpHeader, udp, Mtu));
    }

    public static TheoryData<string, int, byte, GsoCheckResult> WrongTypes() => new()
    {
        { "TCPV4 on IPv6", 6, VirtioNetHeader.GsoTcpV4, GsoCheckResult.WrongVersion },
        { "TCPV6 on IPv4", 4, VirtioNetHeader.GsoTcpV6, GsoCheckResult.WrongVersion },
        { "UFO on IPv4", 4, VirtioNetHeader.GsoUdp, GsoCheckResult.BadType },
        { "UFO on IPv6", 6, VirtioNetHeader.GsoUdp, GsoCheckResult.BadType },
        { "USO on IPv4", 4, VirtioNetHeader.GsoUdpL4, GsoCheckResult.BadType },
        { "USO on IPv6", 6, VirtioNetHeader.GsoUdpL4, GsoCheckResult.BadType },
        { "TCPV4|ECN", 4, VirtioNetHeader.GsoTcpV4 | VirtioNetHeader.GsoEcn, GsoCheckResult.BadType },
        { "TCPV6|ECN", 6, VirtioNetHeader.GsoTcpV6 | VirtioNetHeader.GsoEcn, GsoCheckResult.BadType },
        { "ECN alone", 4, VirtioNetHeader.GsoEcn, GsoCheckResult.BadType },
        { "unknown type 2", 4, 2, GsoCheckResult.BadType },
        { "unknown type 6", 6, 6, GsoCheckResult.BadType },
        { "unknown type 0x7f", 4, 0x7f, GsoCheckResult.BadType },
        { "all bits", 4, 0xff, GsoCheckResult.BadType },
    };

    [Theory]
    [MemberData(nameof(WrongTypes))]
    public void Gso_types_that_do_not_fit_the_packet_are_refused(string name, int version, byte type, GsoCheckResult expected)
    {
        var (header, packet) = version == 4 ? V4() : V6();
        header.GsoType = type;
        var result = GsoPacket.Validate(ref header, packet, Mtu);
        Assert.True(expected == result, $"{name}: {result}");
    }

    [Theory]
    [InlineData(VirtioNetHeader.GsoTcpV4)]
    [InlineData(VirtioNetHeader.GsoTcpV6)]
    public void A_tcp_gso_type_on_a_udp_packet_is_refused(byte type)
    {
        var (header, packet) = Segments.PartialUdp(type == VirtioNetHeader.GsoTcpV4 ? 4 : 6, Segments.Payload(3000));
        header.GsoType = type;
        header.GsoSize = 1000;
        Assert.Equal(GsoCheckResult.WrongVersion, GsoPacket.Validate(ref header, packet, Mtu));
    }

    [Theory]
    [InlineData(0x04)]
    [InlineData(0x08)]
    [InlineData(0x80)]
    [InlineData(0xff)]
    public void Unknown_flag_bits_are_refused(byte extra)
    {
        var (header, packet) = V4();
        header.Flags |= extra;
        Assert.Equal(GsoCheckResult.BadType, GsoPacket.Validate(ref header, packet, Mtu));
        var plain = new VirtioNetHeader { Flags = extra };
        Assert.Equal(GsoCheckResult.BadType, GsoPacket.Validate(ref plain, Segments.Icmp(), Mtu));
    }

    public static TheoryData<string, ushort, ushort, byte> BadOffsets() => new()
    {
        { "csum_start 0", 0, 16, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_start inside the IP header", 19, 16, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_start one past the IP header", 21, 16, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_start past the end", 60000, 16, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_start at the last byte", 65535, 16, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_offset of UDP on TCP", 20, 6, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_offset 0", 20, 0, VirtioNetHeader.FlagNeedsChecksum },
        { "csum_offset past the end", 20, 65535, VirtioNetHeader.FlagNeedsChecksum },
        { "GSO without NEEDS_CSUM", 20, 16, 0 },
        { "GSO with only DATA_VALID", 20, 16, VirtioNetHeader.FlagDataValid },
    };

    [Theory]
    [MemberData(nameof(BadOffsets))]
    public void Checksum_offsets_that_miss_the_tcp_checksum_are_refused(string name, ushort start, ushort offset, byte flags)
    {
        var (header, packet) = V4();
        header.ChecksumStart = start;
        header.ChecksumOffset = offset;
        header.Flags = flags;
        var result = GsoPacket.Validate(ref header, packet, Mtu);
        Assert.True(result == GsoCheckResult.BadOffsets, $"{name}: {result}");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Partial_checksum_offsets_past_the_end_or_off_the_l4_header_are_refused(int version)
    {
        int ip = version == 4 ? 20 : 40;
        var (tcpHeader, tcp) = Segments.PartialChecksum(new TcpSpec { Version = version }, Segments.Payload(10));
        foreach (var (start, offset) in new (ushort, ushort)[] { ((ushort)tcp.Length, 16), (65535, 16), ((ushort)ip, 65535), ((ushort)ip, 6), ((ushort)(ip + 2), 16), (0, 16) })
        {
            var h = tcpHeader with { ChecksumStart = start, ChecksumOffset = offset };
            Assert.Equal(GsoCheckResult.BadOffsets, GsoPacket.Validate(ref h, tcp, Mtu));
        }
        // NEEDS_CSUM on a protocol without a checksum Isotun completes (ICMP).
        var icmp = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsChecksum, ChecksumStart = 20, ChecksumOffset = 2 };
        Assert.Equal(GsoCheckResult.BadOffsets, GsoPacket.Validate(ref icmp, Segments.Icmp(), Mtu));
        // A UDP header cut short: the checksum field itself lies past the end.
        var (udpHeader, udp) = Segments.PartialUdp(version, []);
        Assert.Equal(GsoCheckResult.BadOffsets, GsoPacket.Validate(ref udpHeader, Shorten(udp, 1, fixLengths: true), Mtu));
    }

    [Theory]
    [InlineData(4, 0)]   // data offset 0: below the minimal TCP header
    [InlineData(4, 4)]
    [InlineData(4, 15)]  // 60 bytes of TCP header claimed, the packet is shorter
    [InlineData(6, 2)]
    [InlineData(6, 15)]
    public void A_tcp_data_offset_outside_the_packet_is_refused(int version, int dataOffsetWords)
    {
        // A super-packet with no payload: the header is all there is, so 60 bytes of TCP header are past the end.
        var (header, packet) = Segments.SuperPacket(new TcpSpec { Version = version, Options = [] }, [], 1000);
        int ip = version == 4 ? 20 : 40;
        packet[ip + 12] = (byte)(dataOffsetWords << 4);
        Assert.Equal(GsoCheckResult.BadOffsets, GsoPacket.Validate(ref header, packet, Mtu));
    }

    public static TheoryData<string, byte[]> Truncated()
    {
        var (_, v4) = V4();
        var (_, v6) = V6();
        return new()
        {
            { "empty", [] },
            { "one byte", [0x45] },
            { "IPv4 header cut", v4[..19] },
            { "IPv6 header cut", v6[..39] },
            { "IPv4 shorter than its total length", v4[..^1] },
            { "IPv6 shorter than its payload length", v6[..^1] },
            { "IPv4 with bytes after its total length", [.. v4, 0] },
            { "IPv6 with bytes after its payload length", [.. v6, 0, 0] },
            { "not IP", [0x50, .. v4[1..]] },
            { "IPv4 header length below 20", [0x44, .. v4[1..]] },
        };
    }

    [Theory]
    [MemberData(nameof(Truncated))]
    public void Truncated_or_inconsistent_packets_are_refused(string name, byte[] packet)
    {
        foreach (byte type in new[] { VirtioNetHeader.GsoTcpV4, VirtioNetHeader.GsoTcpV6, VirtioNetHeader.GsoNone })
        {
            var h = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsChecksum, GsoType = type, GsoSize = 1000, ChecksumStart = 20, ChecksumOffset = 16 };
            var result = GsoPacket.Validate(ref h, packet, Mtu);
            Assert.True(result == GsoCheckResult.BadPacket, $"{name}, type {type}: {result}");
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Only_the_tcp_header_of_a_super_packet_is_present(int version)
    {
        // IP header complete and consistent, TCP header cut in the middle.
        int ip = version == 4 ? 20 : 40;
        var (header, packet) = Segments.SuperPacket(new TcpSpec { Version = version }, [], 1000);
        var cut = Shorten(packet, packet.Length - ip - 10, fixLengths: true);
        Assert.Equal(GsoCheckResult.BadOffsets, GsoPacket.Validate(ref header, cut, Mtu));
    }

    [Fact]
    public void An_ipv4_fragment_is_never_a_super_packet()
    {
        foreach (ushort field in new ushort[] { 0x2000 /* MF */, 0x0001 /* offset 8 */, 0x6000 /* DF|MF */ })
        {
            var (header, packet) = Segments.SuperPacket(new TcpSpec { FragmentField = field }, Payload, 1348);
            Assert.Equal(GsoCheckResult.BadPacket, GsoPacket.Validate(ref header, packet, Mtu));
        }
    }

    [Fact]
    public void Random_headers_and_mangled_packets_never_throw_and_what_passes_is_consistent()
    {
        var random = new Random(20261201);
        var (_, v4) = V4();
        var (_, v6) = V6();
        var (_, udp) = Segments.PartialUdp(4, Segments.Payload(900));
        byte[][] bases = [v4, v6, udp, Segments.Icmp(), Segments.Tcp(new TcpSpec { Version = 6 }, Segments.Payload(40))];
        Span<byte> raw = stackalloc byte[VirtioNetHeader.Length];
        for (int i = 0; i < 20000; i++)
        {
            var packet = (byte[])bases[random.Next(bases.Length)].Clone();
            if (random.Next(3) == 0) packet = packet[..random.Next(packet.Length + 1)];
            for (int k = random.Next(4); k > 0 && packet.Length > 0; k--) packet[random.Next(Math.Min(packet.Length, 80))] = (byte)random.Next(256);
            random.NextBytes(raw);
            // Mostly plausible values, so the later checks are reached too.
            if (random.Next(2) == 0) raw[1] = (byte)random.Next(6);
            if (random.Next(2) == 0) raw[0] = (byte)random.Next(4);
            var header = VirtioNetHeader.Read(raw);
            if (random.Next(2) == 0) header.ChecksumStart = (ushort)(packet.Length > 0 && packet[0] >> 4 == 6 ? 40 : 20);
            if (random.Next(2) == 0) header.ChecksumOffset = 16;
            if (random.Next(2) == 0) header.GsoSize = (ushort)random.Next(Mtu + 2);

            if (GsoPacket.Validate(ref header, packet, Mtu) != GsoCheckResult.Ok) continue;
            Assert.True((header.Flags & ~3) == 0);
            if (header.IsGso)
            {
                Assert.True(header.GsoType is VirtioNetHeader.GsoTcpV4 or VirtioNetHeader.GsoTcpV6);
                Assert.True(header.GsoSize is >= GsoPacket.MinTcpGsoSize and <= Mtu);
                Assert.True(header.HeaderLength <= packet.Length);
                Assert.True(header.ChecksumStart + header.ChecksumOffset + 2 <= packet.Length);
                // Whatever passed can be split without throwing, into segments no larger than headers + gso_size.
                var buffer = new byte[header.HeaderLength + header.GsoSize];
                for (int s = 0; s < GsoPacket.SegmentCount(header, packet.Length); s++)
                    Assert.True(GsoPacket.WriteSegment(packet, header, s, buffer) <= buffer.Length);
            }
            else if (header.NeedsChecksum)
            {
                Assert.True(header.ChecksumStart + header.ChecksumOffset + 2 <= packet.Length);
            }
        }
    }

    [Fact]
    public void The_header_round_trips_little_endian()
    {
        var h = new VirtioNetHeader { Flags = 1, GsoType = 4, HeaderLength = 0x0102, GsoSize = 0x0304, ChecksumStart = 0x0506, ChecksumOffset = 0x0708 };
        var bytes = new byte[VirtioNetHeader.Length];
        h.Write(bytes);
        Assert.Equal(new byte[] { 1, 4, 0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x08, 0x07 }, bytes);
        Assert.Equal(h, VirtioNetHeader.Read(bytes));
        Assert.True(h.NeedsChecksum && h.IsGso);
        Assert.False(new VirtioNetHeader().IsGso);
    }

    /// <summary>Cuts <paramref name="bytes"/> off the end; with <paramref name="fixLengths"/> the IP length fields follow, so only the L4 part is short.</summary>
    private static byte[] Shorten(byte[] packet, int bytes, bool fixLengths)
    {
        var cut = packet[..^bytes];
        if (!fixLengths) return cut;
        if (cut[0] >> 4 == 4) BinaryPrimitives.WriteUInt16BigEndian(cut.AsSpan(2), (ushort)cut.Length);
        else BinaryPrimitives.WriteUInt16BigEndian(cut.AsSpan(4), (ushort)(cut.Length - 40));
        return cut;
    }
}
