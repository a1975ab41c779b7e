using Isotun.Protocol.Cstp;
using Isotun.Transport;
using Isotun.UnitTests.Core.Transport;

namespace Isotun.UnitTests.Offload;

/// <summary>
/// ConnectionReader.TryReadBufferedFrame: the frames of a burst that are already buffered, without I/O, so the
/// reader can merge a whole run of segments before the next read. It never reads, never blocks, never throws.
/// </summary>
public class BufferedFrameTests
{
    private static readonly byte[][] Payloads = [Bytes(1400, 1), Bytes(0, 2), Bytes(65535, 3), Bytes(1, 4), Bytes(9000, 5), Bytes(40, 6)];
    private static readonly CstpPacketType[] Types = [CstpPacketType.Data, CstpPacketType.Keepalive, CstpPacketType.IsotunGso, CstpPacketType.Data, CstpPacketType.IsotunGso, CstpPacketType.DpdRequest];

    // Small enough to arrive in the reader's first (initial-size) read.
    private static readonly byte[][] SmallPayloads = [Bytes(1400, 1), Bytes(0, 2), Bytes(9000, 3), Bytes(1, 4), Bytes(3000, 5), Bytes(40, 6)];

    private static byte[] Burst(byte[][] payloads) => payloads.Select((p, i) => ConnectionReaderTests.Frame(Types[i], p)).SelectMany(f => f).ToArray();

    [Fact]
    public async Task A_burst_in_one_read_is_handed_out_without_further_reads()
    {
        var bytes = Burst(SmallPayloads);
        Assert.True(bytes.Length <= ConnectionReader.InitialBufferSize);
        var stream = new ChunkedReadStream([bytes]) { ForbidEndOfStream = true };
        using var reader = new ConnectionReader(stream);
        var first = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal((FrameReadStatus.Ok, Types[0]), (first.Status, first.Type));
        var payloads = new List<ReadOnlyMemory<byte>> { first.Payload };
        while (reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out var frame))
        {
            Assert.Equal(FrameReadStatus.Ok, frame.Status);
            Assert.Equal(Types[payloads.Count], frame.Type);
            payloads.Add(frame.Payload);
        }
        Assert.Equal(1, stream.Reads);
        // Earlier payloads stay valid until the next read from the stream.
        Assert.Equal(SmallPayloads.Length, payloads.Count);
        for (int i = 0; i < SmallPayloads.Length; i++) Assert.Equal(SmallPayloads[i], payloads[i].ToArray());
        Assert.False(reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out var none));
        Assert.Equal(default, none);
        Assert.Equal(1, stream.Reads);
    }

    [Theory]
    [MemberData(nameof(ConnectionReaderTests.Seeds), MemberType = typeof(ConnectionReaderTests))]
    public async Task Any_split_gives_the_same_frames_and_incomplete_frames_wait_for_a_read(int seed)
    {
        // Large frames too: the reader's buffer grows past its initial size for them.
        var bytes = Burst(Payloads);
        using var reader = new ConnectionReader(ChunkedReadStream.Resplit(bytes, seed, maxChunk: 20_000));
        int seen = 0;
        while (true)
        {
            var frame = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
            if (frame.Status == FrameReadStatus.EndOfStream) break;
            do
            {
                Assert.Equal(FrameReadStatus.Ok, frame.Status);
                Assert.Equal(Types[seen], frame.Type);
                Assert.Equal(Payloads[seen], frame.Payload.ToArray());
                seen++;
            }
            while (reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out frame));
        }
        Assert.Equal(Payloads.Length, seen);
    }

    [Theory]
    [InlineData(1)]   // part of a header
    [InlineData(7)]
    [InlineData(8)]   // a header, no payload yet
    [InlineData(100)] // part of the payload
    public async Task A_frame_that_is_not_complete_yet_is_not_returned(int partial)
    {
        var good = ConnectionReaderTests.Frame(CstpPacketType.Data, Bytes(10, 7));
        var next = ConnectionReaderTests.Frame(CstpPacketType.Data, Bytes(1400, 8));
        var stream = new ChunkedReadStream([[.. good, .. next[..partial]], next[partial..]]);
        using var reader = new ConnectionReader(stream);
        Assert.Equal(Bytes(10, 7), (await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default)).Payload.ToArray());
        Assert.False(reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out _));
        Assert.Equal(1, stream.Reads);
        var completed = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal(Bytes(1400, 8), completed.Payload.ToArray());
    }

    [Theory]
    [InlineData(new byte[] { 0x53, 0x54, 0x46, 0x02, 0, 0, 0, 0 }, CstpParseResult.BadMagic)]
    [InlineData(new byte[] { 0x53, 0x54, 0x46, 0x01, 0, 0, 0, 1 }, CstpParseResult.BadReserved)]
    [InlineData(new byte[] { 0x53, 0x54, 0x46, 0x01, 0, 0, 0x41, 0 }, CstpParseResult.UnknownType)]
    [InlineData(new byte[] { 0x53, 0x54, 0x46, 0x01, 0x07, 0xd0, 0, 0 }, CstpParseResult.TooLarge)]
    public async Task A_bad_frame_in_the_buffer_is_reported_not_thrown(byte[] bad, CstpParseResult expected)
    {
        var stream = new ChunkedReadStream([[.. ConnectionReaderTests.Frame(CstpPacketType.Data, Bytes(10, 9)), .. bad]]);
        using var reader = new ConnectionReader(stream);
        await reader.ReadFrameAsync(1500, default);
        Assert.True(reader.TryReadBufferedFrame(1500, out var frame));
        Assert.Equal((FrameReadStatus.BadFrame, expected), (frame.Status, frame.Parse));
        Assert.True(frame.Payload.IsEmpty);
    }

    [Fact]
    public void Before_any_read_there_is_nothing_buffered()
    {
        var stream = new ChunkedReadStream([Burst(SmallPayloads)]);
        using var reader = new ConnectionReader(stream);
        Assert.False(reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out _));
        Assert.Equal(0, stream.Reads);
    }

    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }
}
