using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;
using Isotun.Transport;
using Isotun.UnitTests.Protocol.Ip;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// TUN → peer: what a packet read from the TUN becomes on the wire. Super-packets go whole to a GSO peer and are
/// cut into MTU segments for any other; plain packets are plain CSTP data frames; SYNs are clamped on every path.
/// </summary>
public class TunFramesTests
{
    private const int Mtu = Segments.Mtu;

    private sealed class Sink
    {
        public List<(CstpPacketType Type, byte[] Payload)> Frames { get; } = [];
        public List<int> BufferSizes { get; } = [];
        public int Refuse { get; set; }
        public int OverBudget { get; set; }
        public bool Closed { get; set; }

        public EnqueueResult Enqueue(PacketBuffer b)
        {
            if (Closed) return EnqueueResult.Closed;
            if (Refuse > 0) { Refuse--; return EnqueueResult.QueueFull; }
            if (OverBudget > 0) { OverBudget--; return EnqueueResult.OverBudget; }
            var frame = b.Frame.Span;
            Assert.Equal(CstpParseResult.Ok, CstpFrame.TryParseHeader(frame, CstpFrame.MaxPayloadLength, out var h));
            Assert.Equal(CstpFrame.HeaderLength + h.PayloadLength, frame.Length);
            Frames.Add((h.Type, frame[CstpFrame.HeaderLength..].ToArray()));
            BufferSizes.Add(b.Array.Length);
            b.Return();
            return EnqueueResult.Queued;
        }
    }

    private static PacketBuffer Read(VirtioNetHeader? header, byte[] packet, out int length)
    {
        var b = PacketBuffer.Rent(PacketBuffer.Capacity);
        int at = 0;
        if (header is { } h)
        {
            h.Write(b.PayloadSpace);
            at = VirtioNetHeader.Length;
        }
        packet.CopyTo(b.PayloadSpace[at..]);
        length = at + packet.Length;
        return b;
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void A_super_packet_goes_whole_to_a_gso_peer(int version)
    {
        var (header, packet) = Segments.SuperPacket(new TcpSpec { Version = version }, Segments.Payload(30_000), 1348);
        var sink = new Sink();
        var buffer = Read(header, packet, out int n);
        var result = TunFrames.Send(buffer, n, tunOffload: true, peerGso: true, peerUso: false, Mtu, sink.Enqueue, out bool consumed);
        Assert.True(consumed);
        Assert.Equal(new TunSendResult(1, 0, false), result);
        var (type, payload) = Assert.Single(sink.Frames);
        Assert.Equal(CstpPacketType.IsotunGso, type);
        Assert.Equal(header, VirtioNetHeader.Read(payload));
        Assert.Equal(packet, payload[VirtioNetHeader.Length..]);
    }

    [Theory]
    [InlineData(4, 1348)]
    [InlineData(6, 1328)]
    public void A_super_packet_is_cut_into_mtu_segments_for_a_stock_peer(int version, int mss)
    {
        var spec = new TcpSpec { Version = version, Flags = Segments.Ack | Segments.Psh };
        var payload = Segments.Payload(30_000);
        var (header, packet) = Segments.SuperPacket(spec, payload, mss);
        var sink = new Sink();
        var buffer = Read(header, packet, out int n);
        var result = TunFrames.Send(buffer, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool consumed);
        Assert.False(consumed); // the caller keeps and reuses its read buffer
        buffer.Return();

        var expected = Segments.ExpectedSegments(spec, payload, mss);
        Assert.Equal(new TunSendResult(expected.Count, 0, false), result);
        Assert.Equal(expected.Count, sink.Frames.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(CstpPacketType.Data, sink.Frames[i].Type);
            Assert.Equal(expected[i], sink.Frames[i].Payload);
            Assert.True(sink.Frames[i].Payload.Length <= Mtu);
        }
    }

    [Fact]
    public void A_full_queue_is_counted_per_segment()
    {
        var (header, packet) = Segments.SuperPacket(new TcpSpec(), Segments.Payload(10 * 1348), 1348);
        var sink = new Sink { Refuse = 3 };
        var buffer = Read(header, packet, out int n);
        var result = TunFrames.Send(buffer, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out _);
        buffer.Return();
        Assert.Equal(new TunSendResult(7, 3, false), result);
    }

    [Fact]
    public void Segments_over_the_budget_are_counted_apart_from_a_full_queue()
    {
        var (header, packet) = Segments.SuperPacket(new TcpSpec(), Segments.Payload(10 * 1348), 1348);
        var sink = new Sink { Refuse = 2, OverBudget = 3 };
        var buffer = Read(header, packet, out int n);
        var result = TunFrames.Send(buffer, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out _);
        buffer.Return();
        Assert.Equal(new TunSendResult(5, 2, false, OverBudget: 3), result);
    }

    /// <summary>A connection that is closing refuses as closed: counted apart from a full queue, for a super-packet's
    /// segments and for a whole packet alike.</summary>
    [Fact]
    public void Frames_for_a_closing_connection_are_counted_apart_from_a_full_queue()
    {
        var (header, packet) = Segments.SuperPacket(new TcpSpec(), Segments.Payload(4 * 1348), 1348);
        var sink = new Sink { Closed = true };
        var buffer = Read(header, packet, out int n);
        Assert.Equal(new TunSendResult(0, 0, false, Closed: 4), TunFrames.Send(buffer, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out _));
        buffer.Return();
        var whole = PacketBuffer.Rent();
        Assert.Equal(new TunSendResult(0, 0, false, Closed: 1), TunFrames.Send(whole, 100, tunOffload: false, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool consumed));
        Assert.False(consumed);
        whole.Return();
    }

    [Fact]
    public void A_whole_packet_over_the_budget_is_not_consumed_and_counted_as_such()
    {
        var sink = new Sink { OverBudget = 1 };
        var buffer = PacketBuffer.Rent();
        var result = TunFrames.Send(buffer, 100, tunOffload: false, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool consumed);
        Assert.False(consumed);
        buffer.Return();
        Assert.Equal(new TunSendResult(0, 0, false, OverBudget: 1), result);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public void A_partial_checksum_is_completed_for_a_stock_peer_and_left_for_a_gso_peer(int version)
    {
        var spec = new TcpSpec { Version = version };
        var payload = Segments.Payload(200);
        var (header, packet) = Segments.PartialChecksum(spec, payload);

        var stock = new Sink();
        var b1 = Read(header, packet, out int n1);
        TunFrames.Send(b1, n1, tunOffload: true, peerGso: false, peerUso: false, Mtu, stock.Enqueue, out bool c1);
        if (!c1) b1.Return();
        var (stockType, stockPayload) = Assert.Single(stock.Frames);
        Assert.Equal(CstpPacketType.Data, stockType);
        Assert.Equal(Segments.Tcp(spec, payload), stockPayload);

        var gso = new Sink();
        var b2 = Read(header, packet, out int n2);
        TunFrames.Send(b2, n2, tunOffload: true, peerGso: true, peerUso: false, Mtu, gso.Enqueue, out _);
        var (type, framed) = Assert.Single(gso.Frames);
        Assert.Equal(CstpPacketType.IsotunGso, type);
        Assert.Equal(packet, framed[VirtioNetHeader.Length..]);
    }

    [Fact]
    public void A_plain_packet_from_an_offload_tun_is_a_plain_data_frame()
    {
        var packet = Segments.Icmp();
        var sink = new Sink();
        var buffer = Read(new VirtioNetHeader(), packet, out int n);
        var result = TunFrames.Send(buffer, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool consumed);
        // Copied into a small buffer: queued, it pins 2 KiB, and the TUN's 64 KiB read buffer stays with the reader.
        Assert.False(consumed);
        buffer.Return();
        Assert.Equal(new TunSendResult(1, 0, false), result);
        var (type, payload) = Assert.Single(sink.Frames);
        Assert.Equal(CstpPacketType.Data, type);
        Assert.Equal(packet, payload);
        Assert.True(Assert.Single(sink.BufferSizes) <= CstpFrame.HeaderLength + PacketBuffer.SmallPayload);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void A_syn_is_clamped_to_the_mtu_on_every_path(bool offload, bool peerGso)
    {
        var syn = PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460));
        var sink = new Sink();
        var buffer = Read(offload ? new VirtioNetHeader() : null, syn, out int n);
        TunFrames.Send(buffer, n, offload, peerGso, peerUso: false, Mtu, sink.Enqueue, out bool consumed);
        if (!consumed) buffer.Return();
        var (_, payload) = Assert.Single(sink.Frames);
        var sent = offload && peerGso ? payload[VirtioNetHeader.Length..] : payload;
        Assert.Equal(Mtu - 40, PacketBuilder.Mss(sent, 20, 20));
        Assert.True(PacketBuilder.TcpChecksumValid(sent, 20, 4));
    }

    [Fact]
    public void Bad_offload_metadata_from_the_tun_is_malformed_not_sent()
    {
        var sink = new Sink();
        var shortRead = Read(null, [1, 2, 3], out int n);
        Assert.Equal(new TunSendResult(0, 0, true), TunFrames.Send(shortRead, n, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool c1));
        Assert.False(c1);
        shortRead.Return();

        var (header, packet) = Segments.SuperPacket(new TcpSpec(), Segments.Payload(5000), 1348);
        header.GsoType = VirtioNetHeader.GsoUdpL4;
        var odd = Read(header, packet, out int m);
        Assert.Equal(new TunSendResult(0, 0, true), TunFrames.Send(odd, m, tunOffload: true, peerGso: false, peerUso: false, Mtu, sink.Enqueue, out bool c2));
        Assert.False(c2);
        odd.Return();
        Assert.Empty(sink.Frames);
    }
}
