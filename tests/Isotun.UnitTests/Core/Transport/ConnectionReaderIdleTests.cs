using System.Threading.Channels;
using Isotun.Protocol.Cstp;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// An idle tunnel holds no receive buffer: it waits with a zero-byte read. A busy one keeps its buffer and reads
/// straight into it. The stream here hands out chunks as a socket would, and records the size of every read asked.
/// </summary>
public class ConnectionReaderIdleTests
{
    private sealed class ChunkStream : Stream
    {
        private readonly Channel<byte[]> _chunks = Channel.CreateUnbounded<byte[]>();
        private byte[]? _pending;
        private int _offset;
        private readonly List<int> _reads = [];

        public int[] Reads { get { lock (_reads) return [.. _reads]; } }

        public void Send(byte[] chunk) => _chunks.Writer.TryWrite(chunk);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            lock (_reads) _reads.Add(buffer.Length);
            _pending ??= await _chunks.Reader.ReadAsync(ct);
            if (buffer.IsEmpty) return 0; // a zero-byte read: data is there, nothing is taken
            int n = Math.Min(buffer.Length, _pending.Length - _offset);
            _pending.AsSpan(_offset, n).CopyTo(buffer.Span);
            _offset += n;
            if (_offset == _pending.Length) (_pending, _offset) = (null, 0);
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static byte[] Frame(byte marker)
    {
        var frame = new byte[CstpFrame.HeaderLength + 100];
        CstpFrame.Write(frame, CstpPacketType.Data, Enumerable.Repeat(marker, 100).ToArray());
        return frame;
    }

    private static async Task<byte> NextAsync(ConnectionReader reader)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var frame = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
        Assert.Equal(FrameReadStatus.Ok, frame.Status);
        return frame.Payload.Span[0];
    }

    [Fact]
    public async Task A_tunnel_waits_for_its_first_data_and_after_a_long_silence_with_a_zero_byte_read_and_reads_straight_in_while_busy()
    {
        var stream = new ChunkStream();
        int idle = 0;
        using var reader = new ConnectionReader(stream) { ReleaseWhenIdle = true, IdleAfter = TimeSpan.FromSeconds(1), Idle = () => idle++ };

        var first = NextAsync(reader);
        await Eventually.True(() => stream.Reads.Length == 1, "the reader did not start waiting");
        Assert.Equal([0], stream.Reads); // nothing held while nothing comes
        stream.Send(Frame(1));
        Assert.Equal(1, await first);
        Assert.Equal(0, stream.Reads[0]);
        Assert.True(stream.Reads[1] > 0);

        // Busy: the next frame comes at once, so the reader waits holding its buffer, as it always did.
        var second = NextAsync(reader);
        stream.Send(Frame(2));
        Assert.Equal(2, await second);
        Assert.Equal(3, stream.Reads.Length);
        Assert.True(stream.Reads[2] > 0);

        // A wait longer than IdleAfter makes it idle again: the wait after it holds nothing.
        var third = NextAsync(reader);
        await Task.Delay(reader.IdleAfter + TimeSpan.FromMilliseconds(200));
        stream.Send(Frame(3));
        Assert.Equal(3, await third);
        var fourth = NextAsync(reader);
        await Eventually.True(() => stream.Reads.Length == 5, "the reader did not start waiting again");
        Assert.Equal(0, stream.Reads[4]);
        stream.Send(Frame(4));
        Assert.Equal(4, await fourth);
        // The owner was told at each idle wait (the first and this one), to give back what it keeps for a burst.
        Assert.Equal(stream.Reads.Count(n => n == 0), idle);
        Assert.Equal(2, idle);
    }

    [Fact]
    public async Task Without_it_the_reader_never_reads_zero_bytes()
    {
        var stream = new ChunkStream();
        using var reader = new ConnectionReader(stream);
        var first = NextAsync(reader);
        await Eventually.True(() => stream.Reads.Length == 1, "the reader did not start waiting");
        stream.Send(Frame(1));
        Assert.Equal(1, await first);
        Assert.All(stream.Reads, n => Assert.True(n > 0));
    }

    [Fact]
    public async Task Bytes_that_came_with_the_wake_up_are_all_read_and_a_cancelled_wait_leaves_a_usable_reader()
    {
        var stream = new ChunkStream();
        using var reader = new ConnectionReader(stream) { ReleaseWhenIdle = true };
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token));
        stream.Send([.. Frame(5), .. Frame(6)]);
        Assert.Equal(5, await NextAsync(reader));
        Assert.Equal(6, await NextAsync(reader));
    }
}
