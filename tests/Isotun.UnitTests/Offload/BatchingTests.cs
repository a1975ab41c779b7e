using Isotun.Protocol.Cstp;
using Isotun.Transport;
using Isotun.UnitTests.Core.Transport;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// FrameWriter with batching (negotiated with Isotun peers only): frames already waiting go out in one write,
/// cut only at frame boundaries; a lone frame on an idle connection goes out at once, without waiting for company.
/// </summary>
public class BatchingTests
{
    [Fact]
    public async Task Large_frames_go_out_alone_from_their_own_buffer_and_small_ones_around_them_are_batched()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Batching = true };
        var expected = new List<byte[]>();
        var small = new List<byte>();
        foreach (var (type, length) in new[] { (CstpPacketType.Data, 1400), (CstpPacketType.Data, 60), (CstpPacketType.IsotunGso, 64_000), (CstpPacketType.Data, 100), (CstpPacketType.IsotunGso, 40_000) })
        {
            var (buffer, bytes) = Frame(type, length, length);
            Assert.True(writer.TryEnqueue(buffer));
            if (length >= FrameWriter.LargeFrame)
            {
                if (small.Count > 0) expected.Add([.. small]);
                small.Clear();
                expected.Add(bytes);
            }
            else small.AddRange(bytes);
        }
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);

        Assert.Equal(expected, stream.Writes);
        Assert.Equal(5, writer.FramesWritten);
    }

    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30); // only against hangs, never a timing claim

    [Fact]
    public async Task Several_queued_frames_become_one_write()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Batching = true };
        var expected = new List<byte>();
        foreach (var (type, length) in new[] { (CstpPacketType.Data, 1400), (CstpPacketType.IsotunGso, 9_000), (CstpPacketType.DpdRequest, 0), (CstpPacketType.Data, 60), (CstpPacketType.Keepalive, 0) })
        {
            var (buffer, bytes) = Frame(type, length, length);
            Assert.True(writer.TryEnqueue(buffer));
            expected.AddRange(bytes);
        }
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);

        var write = Assert.Single(stream.Writes);
        Assert.Equal(expected, write);
        Assert.Equal(5, writer.FramesWritten);
        Assert.Equal(expected.Count, writer.BytesWritten);
    }

    [Fact]
    public async Task A_backlog_larger_than_a_batch_is_cut_at_frame_boundaries()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream, queueDepth: 64) { Batching = true };
        var frames = new List<byte[]>();
        for (int i = 0; i < 20; i++)
        {
            // Below FrameWriter.LargeFrame, so every frame is copied into the batch.
            var (buffer, bytes) = Frame(i % 2 == 0 ? CstpPacketType.IsotunGso : CstpPacketType.Data, i % 2 == 0 ? 15_000 : 13_000, i);
            Assert.True(writer.TryEnqueue(buffer));
            frames.Add(bytes);
        }
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);

        Assert.True(stream.WriteCount > 1);
        Assert.True(stream.WriteCount < 20);
        var parsed = new List<byte[]>();
        foreach (var write in stream.Writes)
        {
            Assert.True(write.Length <= FrameWriter.BatchBytes);
            // Each write is whole frames: parse it from its first byte to its last.
            int at = 0;
            while (at < write.Length)
            {
                Assert.Equal(CstpParseResult.Ok, CstpFrame.TryParseHeader(write.AsSpan(at), CstpFrame.MaxPayloadLength, out var h));
                int total = CstpFrame.HeaderLength + h.PayloadLength;
                Assert.True(at + total <= write.Length, "a frame is split across writes");
                parsed.Add(write[at..(at + total)]);
                at += total;
            }
        }
        Assert.Equal(frames, parsed);
    }

    [Fact]
    public async Task An_idle_connection_sends_a_lone_frame_without_waiting_for_more()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Batching = true };
        var run = writer.RunAsync(default);

        var (first, firstBytes) = Frame(CstpPacketType.Data, 84, 1);
        Assert.True(writer.TryEnqueue(first));
        // Written with nothing else queued and the writer not completed: no batch is waited for.
        await Eventually.True(() => stream.WriteCount == 1 && stream.Flushes >= 1, "condition not reached", Guard);
        Assert.Equal(firstBytes, stream.Writes[0]);
        Assert.False(run.IsCompleted);

        var (second, secondBytes) = Frame(CstpPacketType.DpdResponse, 0, 2);
        Assert.True(writer.TryEnqueue(second));
        await Eventually.True(() => stream.WriteCount == 2, "condition not reached", Guard);
        Assert.Equal(secondBytes, stream.Writes[1]);

        writer.Complete();
        await run.WaitAsync(Guard);
        Assert.Equal(2, writer.FramesWritten);
    }

    [Fact]
    public async Task Without_batching_the_same_backlog_is_one_write_per_frame()
    {
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream);
        for (int i = 0; i < 5; i++) Assert.True(writer.TryEnqueue(Frame(CstpPacketType.Data, 100 + i, i).Buffer));
        writer.Complete();
        await writer.RunAsync(default).WaitAsync(Guard);
        Assert.Equal(5, stream.WriteCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_parked_writer_ends_on_cancel_and_refuses_frames_after(bool batching)
    {
        // The writer waits for frames without the token (no allocation per wake-up); cancelling must still end it.
        var stream = new RecordingWriteStream();
        var writer = new FrameWriter(stream) { Batching = batching };
        using var cts = new CancellationTokenSource();
        var run = writer.RunAsync(cts.Token);
        Assert.True(writer.TryEnqueue(Frame(CstpPacketType.Data, 10, 1).Buffer));
        await Eventually.True(() => stream.WriteCount == 1, "condition not reached", Guard);
        Assert.False(run.IsCompleted);

        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Guard));
        var late = Frame(CstpPacketType.Data, 10, 2).Buffer;
        Assert.False(writer.TryEnqueue(late)); // a dead connection's queue does not fill up unseen
        late.Return();
        Assert.Equal(1, stream.WriteCount);
    }

    private static (PacketBuffer Buffer, byte[] Bytes) Frame(CstpPacketType type, int length, int seed)
    {
        var payload = new byte[length];
        new Random(seed).NextBytes(payload);
        var buffer = PacketBuffer.Control(type, payload);
        return (buffer, buffer.Frame.ToArray());
    }
}
