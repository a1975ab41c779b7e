using Isotun.Protocol.Offload;
using Isotun.Transport;
using Isotun.Tun;
using Isotun.UnitTests.InProcess;
using Isotun.UnitTests.Offload;

namespace Isotun.UnitTests.Core.Tun;

/// <summary>The memory twin keeps the <see cref="ITunQueue"/> contract, so the data path can be tested on it.</summary>
public sealed class MemoryTunTests
{
    private static readonly System.Net.IPAddress Local = System.Net.IPAddress.Parse("10.77.0.2");

    [Fact]
    public void A_batch_read_returns_what_waits_up_to_the_batch_size_at_the_offset()
    {
        using var tun = new MemoryTun("t", capacity: 16);
        for (int i = 0; i < 5; i++) Assert.True(tun.Inject(Packets.Numbered(Local, Packets.Far4, i)));
        var bufs = new Memory<byte>[3];
        for (int i = 0; i < bufs.Length; i++) bufs[i] = new byte[2048];
        var sizes = new int[3];

        Assert.Equal(3, tun.Queues[0].Read(bufs, sizes, offset: 8));
        Assert.Equal(2, tun.Queues[0].Read(bufs, sizes, offset: 8));
        for (int i = 0; i < 2; i++) Assert.Equal(3 + i, Packets.Number(bufs[i].Span.Slice(8, sizes[i]).ToArray()));
        Assert.Equal(0, tun.Queues[0].Read(bufs, sizes, offset: 8));
    }

    [Fact]
    public void A_closed_queue_reads_minus_one_and_refuses_writes()
    {
        var tun = new MemoryTun("t");
        tun.Dispose();
        var bufs = new Memory<byte>[] { new byte[64] };
        Assert.Equal(-1, tun.Queues[0].Read(bufs, new int[1], 0));
        Assert.Equal(0, tun.Queues[0].Write([new byte[20]], 0));
        Assert.False(tun.Inject(new byte[20]));
    }

    [Fact]
    public void A_full_device_refuses_writes_and_counts_them()
    {
        using var tun = new MemoryTun("t", capacity: 2);
        ReadOnlyMemory<byte>[] batch = [new byte[20], new byte[21], new byte[22]];

        Assert.Equal(2, tun.Queues[0].Write(batch, 0));
        Assert.Equal(1, tun.Queues[0].Refused);
        Assert.Equal(2, tun.Drain().Count);
    }

    [Fact]
    public void Writes_of_all_queues_land_in_one_place_minus_the_offset()
    {
        using var tun = new MemoryTun("t", queues: 2);
        tun.Queues[0].Write([new byte[] { 9, 9, 1 }], 2);
        tun.Queues[1].Write([new byte[] { 9, 9, 2 }], 2);

        Assert.Equal([[1], [2]], tun.Drain());
        Assert.Equal(1, tun.Queues[0].Writes);
        Assert.Equal(1, tun.Queues[1].Writes);
    }

    [Fact]
    public void A_tun_writer_merges_a_run_of_segments_into_one_super_packet()
    {
        using var tun = new MemoryTun("t", offload: true, uso: true);
        var writer = new TunWriter(tun.Queues[0]);
        var spec = new TcpSpec();
        var payload = Segments.Payload(4 * 1348);

        foreach (var segment in Segments.ExpectedSegments(spec, payload, 1348))
            Assert.True(writer.Write(Packets.Framed(segment, offload: true), mayCoalesce: true));
        Assert.True(writer.Flush());

        var merged = Assert.Single(tun.Drain());
        var header = VirtioNetHeader.Read(merged);
        Assert.True(header.IsGso);
        Assert.Equal(payload, Segments.TcpPayload(merged[VirtioNetHeader.Length..]).ToArray());
    }

    [Fact]
    public void A_tun_writer_cuts_a_udp_super_packet_for_a_tun_without_uso()
    {
        using var tun = new MemoryTun("t", offload: true, uso: false);
        var writer = new TunWriter(tun.Queues[0]);

        Assert.True(writer.Write(Packets.UdpSuperPacket(Local, Packets.Far4, Segments.Payload(3 * 1000), 1000), mayCoalesce: false));

        var datagrams = tun.Drain();
        Assert.Equal(3, datagrams.Count);
        Assert.All(datagrams, d => Assert.False(VirtioNetHeader.Read(d).IsGso));
        Assert.Equal(3, writer.Writes);
    }

    /// <summary>
    /// A client takes the MTU its server gives, up to 64 KiB: datagrams larger than a server's largest (9000) are cut
    /// too, not a crash of the client.
    /// </summary>
    [Fact]
    public void A_tun_writer_cuts_datagrams_larger_than_a_jumbo_frame()
    {
        using var tun = new MemoryTun("t", offload: true, uso: false);
        var writer = new TunWriter(tun.Queues[0]);

        Assert.True(writer.Write(Packets.UdpSuperPacket(Local, Packets.Far4, Segments.Payload(2 * 20_000), 20_000), mayCoalesce: false));

        var datagrams = tun.Drain();
        Assert.Equal(2, datagrams.Count);
        Assert.All(datagrams, d => Assert.Equal(VirtioNetHeader.Length + 28 + 20_000, d.Length));
    }
}
