using Isotun.Protocol.Cstp;
using Isotun.Transport;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// The one writer of a connection. openconnect and ocserv need exactly one CSTP frame per TLS record, so
/// every frame must be exactly one write call on the stream underneath, never split and never batched.
/// </summary>
public class FrameWriterTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30); // only against hangs, never a timing claim

    [Fact]
    public async Task Every_frame_is_exactly_one_write_of_exactly_that_frame()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream);
        var expected = new List<byte[]>();
        foreach (var (type, length) in new (CstpPacketType, int)[]
        {
            (CstpPacketType.Keepalive, 0), (CstpPacketType.Data, 1), (CstpPacketType.Data, 1400), (CstpPacketType.DpdRequest, 4),
            (CstpPacketType.Data, PacketBuffer.SmallPayload), (CstpPacketType.Data, 9000), (CstpPacketType.Data, CstpFrame.MaxPayloadLength),
            (CstpPacketType.Disconnect, 1),
        })
        {
            var (buffer, bytes) = Data(type, length, seed: length);
            Assert.True(writer.TryEnqueue(buffer));
            expected.Add(bytes);
        }
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);

        Assert.Equal(expected.Count, stream.WriteCount);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], stream.Writes[i]);
        Assert.Equal(expected.Count, writer.FramesWritten);
        Assert.Equal(expected.Sum(e => (long)e.Length), writer.BytesWritten);
        Assert.True(stream.Flushes >= 1);
    }

    [Fact]
    public async Task A_peer_that_stops_reading_pins_no_more_than_the_sessions_budget_shared_by_its_connections()
    {
        // Two connections of one session, nobody writing: what they may queue together is bounded in bytes.
        var budget = new MemoryBudget(10 * PacketBuffer.Capacity);
        var (a, b) = (new FrameWriter(Stream.Null, queueDepth: 1024) { Budget = budget }, new FrameWriter(Stream.Null, queueDepth: 1024) { Budget = budget });
        int queued = 0, overBudget = 0;
        for (int i = 0; i < 40; i++)
        {
            var frame = PacketBuffer.Rent(PacketBuffer.Capacity).Seal(CstpPacketType.Data, 60_000); // a 64 KiB super-packet buffer
            switch ((i % 2 == 0 ? a : b).Offer(frame))
            {
                case EnqueueResult.Queued: queued++; break;
                case EnqueueResult.OverBudget: overBudget++; frame.Return(); break;
                default: Assert.Fail("the queue is far from full"); break;
            }
        }
        Assert.Equal(10, queued);
        Assert.Equal(30, overBudget);
        Assert.Equal(30, budget.Refused);
        Assert.True(budget.Held <= budget.Limit);
        // Small frames still fit in what is left of the budget (none here), and control frames always go in.
        Assert.True(a.EnqueueAsync(PacketBuffer.Control(CstpPacketType.DpdRequest, []), default).IsCompletedSuccessfully);
        Assert.True(budget.Held > budget.Limit);

        // Once written, the frames give their bytes back.
        a.Complete();
        b.Complete();
        await Task.WhenAll(a.RunAsync(default), b.RunAsync(default)).WaitAsync(Guard);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public void A_full_queue_gives_back_what_the_frame_took_from_the_budget()
    {
        var budget = new MemoryBudget(MemoryBudget.DefaultBytes);
        var writer = new FrameWriter(Stream.Null, queueDepth: 2) { Budget = budget };
        var frames = Enumerable.Range(0, 3).Select(_ => PacketBuffer.Rent().Seal(CstpPacketType.Data, 100)).ToList();
        Assert.Equal(EnqueueResult.Queued, writer.Offer(frames[0]));
        Assert.Equal(EnqueueResult.Queued, writer.Offer(frames[1]));
        Assert.Equal(EnqueueResult.QueueFull, writer.Offer(frames[2]));
        frames[2].Return();
        Assert.Equal(2L * frames[0].Array.Length, budget.Held);
        Assert.Equal(0, budget.Refused);
    }

    /// <summary>A queue closed because its connection is ending refuses frames as closed, not as full: the drops are no
    /// sign of a peer that cannot keep up (which the doctor warns of), and the budget gets its bytes back.</summary>
    [Fact]
    public void A_closed_queue_refuses_frames_as_closed_not_as_full()
    {
        var budget = new MemoryBudget(MemoryBudget.DefaultBytes);
        var writer = new FrameWriter(Stream.Null, queueDepth: 2) { Budget = budget };
        writer.Complete();
        var frame = PacketBuffer.Rent().Seal(CstpPacketType.Data, 100);
        Assert.Equal(EnqueueResult.Closed, writer.Offer(frame));
        var plain = new FrameWriter(Stream.Null, queueDepth: 2);
        plain.Complete();
        Assert.Equal(EnqueueResult.Closed, plain.Offer(frame));
        frame.Return();
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public void A_budget_below_one_super_packet_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryBudget(PacketBuffer.Capacity - 1));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_inline_writer_is_run_by_the_thread_that_queues_for_it_while_it_is_parked(bool batching)
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream, inline: true) { Batching = batching };
        var run = writer.RunAsync(default); // parks: nothing queued
        for (int i = 1; i <= 3; i++)
        {
            var (frame, bytes) = Data(CstpPacketType.Data, 100 * i, i);
            Assert.True(writer.TryEnqueue(frame));
            // Written and flushed before TryEnqueue returned, on this thread: no hand-off to another one.
            Assert.Equal(i, stream.WriteCount);
            Assert.Equal(bytes, stream.Writes[i - 1]);
            Assert.Equal(i, stream.Flushes);
        }
        Assert.False(run.IsCompleted);
        writer.Complete();
        await run.WaitAsync(Guard);
    }

    [Fact]
    public async Task A_full_queue_is_drained_one_write_per_frame_not_batched()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream, queueDepth: 300);
        for (int i = 0; i < 300; i++) Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 60 + i, i).Buffer));
        var run = writer.RunAsync(default);
        await Eventually.True(() => stream.WriteCount == 300, "condition not reached", Guard);
        // Frames queued while the writer runs are still written one by one.
        for (int i = 0; i < 50; i++) await writer.EnqueueAsync(Data(CstpPacketType.Data, 100, i).Buffer, default);
        writer.Complete();
        await run.WaitAsync(Guard);

        Assert.Equal(350, stream.WriteCount);
        Assert.All(stream.Writes, w => Assert.Equal(CstpFrame.HeaderLength + (w[4] << 8 | w[5]), w.Length));
    }

    [Fact]
    public async Task Only_a_peer_that_negotiated_batching_gets_frames_packed_and_still_intact()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Batching = true };
        var expected = new List<byte>();
        for (int i = 0; i < 100; i++)
        {
            var (buffer, bytes) = Data(CstpPacketType.Data, 1400 + i, i);
            Assert.True(writer.TryEnqueue(buffer));
            expected.AddRange(bytes);
        }
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);

        Assert.True(stream.WriteCount < 100);
        Assert.All(stream.Writes, w => Assert.True(w.Length <= FrameWriter.BatchBytes));
        Assert.Equal(expected, stream.Writes.SelectMany(w => w));
        Assert.Equal(100, writer.FramesWritten);
    }

    [Fact]
    public void TryEnqueue_is_false_when_the_queue_is_full_or_closed()
    {
        var writer = new FrameWriter(new RecordingWriteStream(), queueDepth: 4);
        for (int i = 0; i < 4; i++) Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 10, i).Buffer));
        var extra = Data(CstpPacketType.Data, 10, 5).Buffer;
        Assert.False(writer.TryEnqueue(extra));
        extra.Return(); // the caller's job when TryEnqueue refuses

        var closed = new FrameWriter(new RecordingWriteStream(), queueDepth: 4);
        closed.Complete();
        var late = Data(CstpPacketType.Data, 10, 6).Buffer;
        Assert.False(closed.TryEnqueue(late));
        late.Return();
    }

    [Fact]
    public async Task WaitForRoom_reports_a_full_queue_and_wakes_when_the_writer_drains_it()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream, queueDepth: 2);
        Assert.True(writer.WaitForRoom(TimeSpan.Zero));
        Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 10, 1).Buffer));
        Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 10, 2).Buffer));
        Assert.False(writer.WaitForRoom(TimeSpan.FromMilliseconds(20)));

        // A dedicated thread (like the TUN reader) waits for room; the writer draining the queue releases it.
        bool? result = null;
        var waiter = new Thread(() => result = writer.WaitForRoom(TimeSpan.FromMinutes(5))) { IsBackground = true };
        waiter.Start();
        var run = writer.RunAsync(default);
        Assert.True(waiter.Join(Guard), "WaitForRoom did not return after the queue drained");
        Assert.True(result);

        writer.Complete();
        await run.WaitAsync(Guard);
        Assert.False(writer.WaitForRoom(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task The_rate_limiter_holds_frames_in_the_queue_until_tokens_come()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(1 << 20, time); // burst 104857.6 bytes
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Limiter = bucket };
        for (int i = 0; i < 4; i++) Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 32768, i).Buffer));
        var run = writer.RunAsync(default);

        // Three frames fit the burst; the fourth waits for time to pass.
        await Eventually.True(() => stream.WriteCount == 3, "condition not reached", Guard);
        await Task.Yield();
        Assert.Equal(3, stream.WriteCount);
        Assert.False(run.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.True(() => stream.WriteCount == 4, "condition not reached", Guard);
        writer.Complete();
        await run.WaitAsync(Guard);
        Assert.All(stream.Writes, w => Assert.Equal(CstpFrame.HeaderLength + 32768, w.Length));
    }

    [Fact]
    public async Task A_failed_write_ends_the_writer_with_the_error()
    {
        var stream = new RecordingWriteStream { FailWith = new IOException("peer went away") };
        var writer = new FrameWriter(stream);
        for (int i = 0; i < 3; i++) Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 10, i).Buffer));
        await Assert.ThrowsAsync<IOException>(() => writer.RunAsync(default).WaitAsync(Guard));
        Assert.Equal(0, writer.FramesWritten);
    }

    [Fact]
    public async Task Cancelling_stops_the_writer()
    {
        var writer = new FrameWriter(new RecordingWriteStream());
        using var cts = new CancellationTokenSource();
        var run = writer.RunAsync(cts.Token);
        Assert.True(writer.TryEnqueue(Data(CstpPacketType.Data, 10, 1).Buffer));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Guard));
    }

    private static (PacketBuffer Buffer, byte[] Bytes) Data(CstpPacketType type, int length, int seed)
    {
        var payload = new byte[length];
        new Random(seed).NextBytes(payload);
        var buffer = PacketBuffer.Control(type, payload);
        return (buffer, buffer.Frame.ToArray());
    }
}
