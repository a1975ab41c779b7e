using System.Buffers.Binary;
using Isotun.Protocol.Offload;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// GRO in user space: only plain consecutive bulk segments of one flow merge; the result is a super-packet the
/// kernel accepts (header fields, pseudo-header partial checksum), and splitting it gives the segments back.
/// </summary>
public class TcpCoalescerTests
{
    private const int Mss = 1348;

    /// <summary>A run of <paramref name="count"/> consecutive segments of one flow, the last <paramref name="lastLength"/> long (default: full).</summary>
    private static List<byte[]> Run(TcpSpec spec, int count, int mss = Mss, int lastLength = -1, bool pshOnLast = false, int seed = 1)
    {
        if (lastLength < 0) lastLength = mss;
        var result = new List<byte[]>();
        uint seq = spec.Seq;
        for (int i = 0; i < count; i++)
        {
            bool last = i == count - 1;
            int length = last ? lastLength : mss;
            byte flags = last && pshOnLast ? (byte)(spec.Flags | Segments.Psh) : spec.Flags;
            result.Add(Segments.Tcp(spec with { Seq = seq, IpId = (ushort)(spec.IpId + i), Flags = flags }, Segments.Payload(length, seed + i)));
            seq += (uint)length;
        }
        return result;
    }

    private static TcpCoalescer Merge(IReadOnlyList<byte[]> segments)
    {
        var gro = new TcpCoalescer();
        Assert.True(gro.TryStart(segments[0]));
        for (int i = 1; i < segments.Count; i++) Assert.True(gro.TryAppend(segments[i]), $"segment {i} was refused");
        Assert.Equal(segments.Count, gro.PendingSegments);
        return gro;
    }

    [Theory]
    [InlineData(4, 10, Mss, false)]
    [InlineData(4, 10, 500, true)]
    [InlineData(4, 2, Mss, true)]
    [InlineData(4, 47, Mss, false)]   // close to the 65000-byte limit
    [InlineData(6, 10, 1328, false)]
    [InlineData(6, 7, 1, true)]
    public void A_run_merges_into_a_super_packet_that_splits_back_byte_for_byte(int version, int count, int lastLength, bool psh)
    {
        int mss = version == 4 ? Mss : 1328;
        var spec = new TcpSpec { Version = version, IpId = 0x0100 };
        var segments = Run(spec, count, mss, Math.Min(lastLength, mss), psh);
        var framed = Merge(segments).Flush().ToArray();

        var header = VirtioNetHeader.Read(framed);
        var packet = framed[VirtioNetHeader.Length..];
        int ip = version == 4 ? 20 : 40;
        Assert.Equal(VirtioNetHeader.FlagNeedsChecksum, header.Flags);
        Assert.Equal(version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6, header.GsoType);
        Assert.Equal(mss, header.GsoSize);
        Assert.Equal(ip + 32, header.HeaderLength);
        Assert.Equal((ip, 16), (header.ChecksumStart, header.ChecksumOffset));

        // IP length covers everything; IPv4 keeps the first segment's id and gets a fresh header checksum.
        Assert.Equal(ip + 32 + segments.Sum(s => Segments.TcpPayload(s).Length), packet.Length);
        if (version == 4)
        {
            Assert.Equal(packet.Length, BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2)));
            Assert.Equal(0x0100, BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(4)));
            Assert.True(Segments.Ipv4HeaderValid(packet));
        }
        else
        {
            Assert.Equal(packet.Length - 40, BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(4)));
        }
        Assert.Equal(psh, (packet[ip + 13] & Segments.Psh) != 0);

        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum over the whole L4 length...
        Assert.Equal(Segments.PseudoHeaderPartial(packet, ip, 6, packet.Length - ip), BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(ip + 16)));
        // ...so finishing it the way the kernel does gives a valid checksum.
        var finished = (byte[])packet.Clone();
        Segments.CompleteChecksum(finished, header.ChecksumStart, header.ChecksumOffset);
        Assert.True(Segments.TcpChecksumValid(finished));

        // Round trip: the peer's header check passes and the split gives back every original segment.
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        Assert.Equal(segments.Count, GsoPacket.SegmentCount(header, packet.Length));
        var buffer = new byte[2048];
        for (int i = 0; i < segments.Count; i++)
            Assert.Equal(segments[i], buffer[..GsoPacket.WriteSegment(packet, header, i, buffer)]);
    }

    [Fact]
    public void A_single_segment_goes_out_unchanged_with_an_empty_header()
    {
        var segment = Run(new TcpSpec(), 1)[0];
        var gro = new TcpCoalescer();
        Assert.True(gro.TryStart(segment));
        var framed = gro.Flush().ToArray();
        Assert.Equal(new byte[VirtioNetHeader.Length], framed[..VirtioNetHeader.Length]);
        Assert.Equal(segment, framed[VirtioNetHeader.Length..]);
        Assert.False(gro.HasPending);
    }

    [Fact]
    public void After_a_flush_a_new_run_starts_clean()
    {
        var gro = new TcpCoalescer();
        var first = Run(new TcpSpec(), 3);
        Assert.True(gro.TryStart(first[0]));
        Assert.False(gro.TryStart(first[1])); // one run at a time
        Assert.True(gro.TryAppend(first[1]));
        gro.Flush();
        Assert.False(gro.HasPending);
        Assert.False(gro.TryAppend(first[2])); // nothing to append to
        var second = Run(new TcpSpec { Version = 6, Seq = 5 }, 2, 1328);
        Assert.True(gro.TryStart(second[0]));
        Assert.True(gro.TryAppend(second[1]));
        var framed = gro.Flush().ToArray();
        Assert.Equal(VirtioNetHeader.GsoTcpV6, VirtioNetHeader.Read(framed).GsoType);
        Assert.Equal(40 + 32 + 2 * 1328, framed.Length - VirtioNetHeader.Length);
    }

    public static TheoryData<string, TcpSpec> NotStartable() => new()
    {
        { "SYN", new TcpSpec { Flags = Segments.Syn | Segments.Ack } },
        { "FIN", new TcpSpec { Flags = Segments.Fin | Segments.Ack } },
        { "RST", new TcpSpec { Flags = Segments.Rst | Segments.Ack } },
        { "URG", new TcpSpec { Flags = Segments.Urg | Segments.Ack } },
        { "CWR", new TcpSpec { Flags = Segments.Cwr | Segments.Ack } },
        { "ECE", new TcpSpec { Flags = Segments.Ece | Segments.Ack } },
        { "no ACK", new TcpSpec { Flags = Segments.Psh } },
        { "IPv4 options", new TcpSpec { Ipv4OptionsLength = 4 } },
        { "IPv4 fragment (MF)", new TcpSpec { FragmentField = 0x2000 } },
        { "IPv4 fragment (offset)", new TcpSpec { FragmentField = 0x0010 } },
    };

    [Theory]
    [MemberData(nameof(NotStartable))]
    public void Segments_that_must_go_out_alone_do_not_start_a_run(string name, TcpSpec spec)
    {
        var gro = new TcpCoalescer();
        Assert.False(gro.TryStart(Segments.Tcp(spec, Segments.Payload(100))), name);
        Assert.False(gro.HasPending);
    }

    [Fact]
    public void Packets_without_payload_or_not_tcp_do_not_start_a_run()
    {
        var gro = new TcpCoalescer();
        Assert.False(gro.TryStart(Segments.Tcp(new TcpSpec(), []))); // pure ACK
        Assert.False(gro.TryStart(Segments.Icmp()));
        Assert.False(gro.TryStart(Segments.PartialUdp(4, Segments.Payload(100)).Packet));
        Assert.False(gro.TryStart([]));
        Assert.False(gro.TryStart([0x45, 0, 0]));
        var withTrailer = Segments.Tcp(new TcpSpec(), Segments.Payload(100));
        Assert.False(gro.TryStart([.. withTrailer, 0])); // bytes after the IP total length
    }

    public static TheoryData<string, Func<TcpSpec, TcpSpec>> Breakers() => new()
    {
        { "other destination port", s => s with { DestinationPort = 5202 } },
        { "other source port", s => s with { SourcePort = 40001 } },
        { "other source address", s => s with { Source = System.Net.IPAddress.Parse(s.Version == 4 ? "10.10.0.3" : "fd00:10::3") } },
        { "other destination address", s => s with { Destination = System.Net.IPAddress.Parse(s.Version == 4 ? "93.184.216.35" : "2001:db8:1:2::81") } },
        { "other ACK number", s => s with { Ack = s.Ack + 1 } },
        { "other window", s => s with { Window = (ushort)(s.Window + 1) } },
        { "other timestamp", s => s with { Options = Segments.Timestamps(0x01020305, 0x0a0b0c0d) } },
        { "options of another length", s => s with { Options = [] } },
        { "other TTL", s => s with { Ttl = 63 } },
        { "other TOS", s => s with { Tos = 0x10 } },
        { "SYN", s => s with { Flags = Segments.Syn | Segments.Ack } },
        { "FIN", s => s with { Flags = Segments.Fin | Segments.Ack } },
        { "RST", s => s with { Flags = Segments.Rst | Segments.Ack } },
        { "CWR", s => s with { Flags = Segments.Cwr | Segments.Ack } },
    };

    [Theory]
    [MemberData(nameof(Breakers))]
    public void A_segment_that_differs_in_one_way_is_refused_and_the_run_stays_intact(string name, Func<TcpSpec, TcpSpec> change)
    {
        foreach (int version in new[] { 4, 6 })
        {
            var spec = new TcpSpec { Version = version };
            int mss = version == 4 ? Mss : Mss - 20; // segments fill the 1400-byte MTU exactly
            var run = Run(spec, 3, mss);
            var gro = Merge(run[..2]);
            var odd = Segments.Tcp(change(spec) with { Seq = spec.Seq + (uint)(2 * mss), IpId = (ushort)(spec.IpId + 2) }, Segments.Payload(mss, 3));
            Assert.False(gro.TryAppend(odd), $"{name}, IPv{version}");
            Assert.Equal(2, gro.PendingSegments);
            Assert.True(gro.TryAppend(run[2]), $"{name}, IPv{version}: the run no longer continues");
            RoundTrip(gro, run);
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void Flow_label_and_df_are_part_of_the_flow(int version)
    {
        var spec = new TcpSpec { Version = version };
        var gro = Merge(Run(spec, 2));
        var changed = version == 6 ? spec with { FlowLabel = 0x12345 } : spec with { DontFragment = false };
        Assert.False(gro.TryAppend(Segments.Tcp(changed with { Seq = spec.Seq + 2 * Mss }, Segments.Payload(Mss))));
    }

    [Fact]
    public void Out_of_order_retransmitted_and_overlapping_segments_are_refused()
    {
        var spec = new TcpSpec();
        var run = Run(spec, 4);
        var gro = Merge(run[..2]);
        Assert.False(gro.TryAppend(run[3]));                        // a gap
        Assert.False(gro.TryAppend(run[1]));                        // a retransmission
        Assert.False(gro.TryAppend(run[0]));
        var overlap = Segments.Tcp(spec with { Seq = spec.Seq + 2 * Mss - 10 }, Segments.Payload(Mss));
        Assert.False(gro.TryAppend(overlap));
        Assert.True(gro.TryAppend(run[2]));
        Assert.True(gro.TryAppend(run[3]));
    }

    [Fact]
    public void A_segment_larger_than_the_first_is_refused()
    {
        var spec = new TcpSpec();
        var gro = new TcpCoalescer();
        Assert.True(gro.TryStart(Segments.Tcp(spec, Segments.Payload(1000))));
        Assert.False(gro.TryAppend(Segments.Tcp(spec with { Seq = spec.Seq + 1000 }, Segments.Payload(1001))));
        Assert.True(gro.TryAppend(Segments.Tcp(spec with { Seq = spec.Seq + 1000 }, Segments.Payload(1000))));
    }

    [Fact]
    public void A_shorter_segment_ends_the_run()
    {
        var spec = new TcpSpec();
        var run = Run(spec, 3, lastLength: 100);
        var gro = Merge(run);
        var next = Segments.Tcp(spec with { Seq = spec.Seq + 2 * Mss + 100 }, Segments.Payload(100));
        Assert.False(gro.TryAppend(next));
        RoundTrip(gro, run);
    }

    [Fact]
    public void Psh_ends_the_run_whether_it_came_first_or_later()
    {
        var spec = new TcpSpec();
        var run = Run(spec, 3, pshOnLast: true);
        var gro = Merge(run);
        Assert.False(gro.TryAppend(Segments.Tcp(spec with { Seq = spec.Seq + 3 * Mss }, Segments.Payload(Mss))));
        RoundTrip(gro, run);

        var pshFirst = Segments.Tcp(spec with { Flags = Segments.Ack | Segments.Psh }, Segments.Payload(Mss));
        Assert.True(gro.TryStart(pshFirst));
        Assert.False(gro.TryAppend(Segments.Tcp(spec with { Seq = spec.Seq + Mss }, Segments.Payload(Mss))));
        Assert.Equal(pshFirst, gro.Flush()[VirtioNetHeader.Length..].ToArray());
    }

    [Fact]
    public void Ipv4_and_ipv6_segments_never_mix()
    {
        var gro = Merge(Run(new TcpSpec(), 2));
        Assert.False(gro.TryAppend(Segments.Tcp(new TcpSpec { Version = 6, Seq = new TcpSpec().Seq + 2 * Mss }, Segments.Payload(Mss))));
    }

    [Fact]
    public void The_run_stops_at_the_size_limit()
    {
        var run = Run(new TcpSpec(), 5, mss: 1000);
        var gro = new TcpCoalescer(maxPacket: 52 + 3 * 1000);
        Assert.True(gro.TryStart(run[0]));
        Assert.True(gro.TryAppend(run[1]));
        Assert.True(gro.TryAppend(run[2]));
        Assert.False(gro.TryAppend(run[3]));
        var framed = gro.Flush();
        Assert.Equal(VirtioNetHeader.Length + 52 + 3000, framed.Length);
        Assert.True(gro.TryStart(run[3]));
        Assert.True(gro.TryAppend(run[4]));
    }

    [Fact]
    public void A_packet_larger_than_the_limit_goes_out_alone_instead_of_throwing()
    {
        // Found by the coalesce fuzz target (fuzz/corpus/coalesce/oversize.bin): a server may send a DATA frame of up
        // to 64 KiB, more than the 65000-byte merge buffer; TryStart threw instead of refusing it.
        var gro = new TcpCoalescer(maxPacket: 1000);
        var big = Segments.Tcp(new TcpSpec(), Segments.Payload(1000));
        Assert.False(gro.TryStart(big));
        Assert.False(gro.HasPending);

        var huge = Segments.Tcp(new TcpSpec { Version = 6 }, Segments.Payload(65535 - 20));
        Assert.True(huge.Length > 65000);
        Assert.False(new TcpCoalescer().TryStart(huge));
    }

    [Fact]
    public void The_default_limit_keeps_a_super_packet_within_one_frame()
    {
        // 1348-byte segments until refused: the result plus its header must fit one 64 KiB CSTP frame.
        var spec = new TcpSpec();
        var run = Run(spec, 60);
        var gro = new TcpCoalescer();
        Assert.True(gro.TryStart(run[0]));
        int merged = 1;
        while (merged < run.Count && gro.TryAppend(run[merged])) merged++;
        Assert.True(merged < run.Count);
        var framed = gro.Flush();
        Assert.True(framed.Length <= 65535, $"{framed.Length} bytes");
        Assert.True(framed.Length - VirtioNetHeader.Length <= 65000);
    }

    private static void RoundTrip(TcpCoalescer gro, List<byte[]> expected)
    {
        var framed = gro.Flush().ToArray();
        var header = VirtioNetHeader.Read(framed);
        var packet = framed[VirtioNetHeader.Length..];
        Assert.Equal(GsoCheckResult.Ok, GsoPacket.Validate(ref header, packet, Segments.Mtu));
        Assert.Equal(expected.Count, GsoPacket.SegmentCount(header, packet.Length));
        var buffer = new byte[2048];
        for (int i = 0; i < expected.Count; i++)
            Assert.Equal(expected[i], buffer[..GsoPacket.WriteSegment(packet, header, i, buffer)]);
    }
}
