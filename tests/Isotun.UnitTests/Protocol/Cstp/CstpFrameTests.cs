using Isotun.Protocol.Cstp;

namespace Isotun.UnitTests.Protocol.Cstp;

public class CstpFrameTests
{
    public static TheoryData<CstpPacketType, int> RoundTripCases()
    {
        var data = new TheoryData<CstpPacketType, int>();
        foreach (var type in Enum.GetValues<CstpPacketType>())
        {
            foreach (int length in new[] { 0, 1, 1400, CstpFrame.MaxPayloadLength })
            {
                data.Add(type, length);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void Write_then_parse_round_trips(CstpPacketType type, int length)
    {
        var payload = new byte[length];
        new Random(length).NextBytes(payload);
        var buffer = new byte[CstpFrame.HeaderLength + length + 3];

        int written = CstpFrame.Write(buffer, type, payload);

        Assert.Equal(CstpFrame.HeaderLength + length, written);
        Assert.Equal("STF\x01"u8.ToArray(), buffer[..4]);
        Assert.Equal(0, buffer[7]);
        Assert.Equal(CstpParseResult.Ok, CstpFrame.TryParseHeader(buffer, CstpFrame.MaxPayloadLength, out var header));
        Assert.Equal(new CstpFrameHeader(type, length), header);
        Assert.Equal(payload, buffer[CstpFrame.HeaderLength..written]);
    }

    [Fact]
    public void Header_layout_matches_the_wire_format()
    {
        var buffer = new byte[8];
        CstpFrame.WriteHeader(buffer, CstpPacketType.Disconnect, 0x1234);
        Assert.Equal(new byte[] { 0x53, 0x54, 0x46, 0x01, 0x12, 0x34, 0x05, 0x00 }, buffer);
    }

    public static TheoryData<byte[], int, CstpParseResult> HeaderVectors() => new()
    {
        { Array.Empty<byte>(), 65535, CstpParseResult.NeedMore },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00 }, 65535, CstpParseResult.NeedMore },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00, 0x00 }, 65535, CstpParseResult.Ok },
        { new byte[] { 0x53, 0x54, 0x46, 0x02, 0x00, 0x00, 0x00, 0x00 }, 65535, CstpParseResult.BadMagic },
        { new byte[] { 0x73, 0x74, 0x66, 0x01, 0x00, 0x00, 0x00, 0x00 }, 65535, CstpParseResult.BadMagic },
        { "GET / HT"u8.ToArray(), 65535, CstpParseResult.BadMagic },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00, 0x01 }, 65535, CstpParseResult.BadReserved },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x07, 0xff }, 65535, CstpParseResult.BadReserved },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x01, 0x00 }, 65535, CstpParseResult.UnknownType },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x02, 0x00 }, 65535, CstpParseResult.UnknownType },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x06, 0x00 }, 65535, CstpParseResult.UnknownType },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x0a, 0x00 }, 65535, CstpParseResult.UnknownType },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0xff, 0x00 }, 65535, CstpParseResult.UnknownType },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x05, 0xdd, 0x00, 0x00 }, 1500, CstpParseResult.TooLarge },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x05, 0xdc, 0x00, 0x00 }, 1500, CstpParseResult.Ok },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0xff, 0xff, 0x00, 0x00 }, 16384, CstpParseResult.TooLarge },
        { new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x01, 0x00, 0x00 }, 0, CstpParseResult.TooLarge },
    };

    [Theory]
    [MemberData(nameof(HeaderVectors))]
    public void Header_vectors(byte[] bytes, int max, CstpParseResult expected)
    {
        Assert.Equal(expected, CstpFrame.TryParseHeader(bytes, max, out var header));
        if (expected != CstpParseResult.Ok)
        {
            Assert.Equal(default, header);
        }
    }

    [Fact]
    public void Writer_rejects_programming_errors()
    {
        var buffer = new byte[16];
        Assert.Throws<ArgumentOutOfRangeException>(() => CstpFrame.WriteHeader(buffer, CstpPacketType.Data, 65536));
        Assert.Throws<ArgumentOutOfRangeException>(() => CstpFrame.WriteHeader(buffer, CstpPacketType.Data, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CstpFrame.WriteHeader(new byte[7], CstpPacketType.Data, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CstpFrame.Write(buffer, CstpPacketType.Data, new byte[9]));
        Assert.Throws<ArgumentOutOfRangeException>(() => CstpFrame.Write(new byte[70000], CstpPacketType.Data, new byte[65536]));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(7);
        var buffer = new byte[12];
        for (int i = 0; i < 20000; i++)
        {
            random.NextBytes(buffer);
            var span = buffer.AsSpan(0, random.Next(buffer.Length + 1));
            var result = CstpFrame.TryParseHeader(span, random.Next(-1, 70000), out _);
            Assert.True(Enum.IsDefined(result));
        }
    }

    public static TheoryData<int> Seeds() => new(Resplitter.Seeds);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Stream_of_frames_parses_identically_when_resplit(int seed)
    {
        var frames = new List<(CstpPacketType Type, byte[] Payload)>
        {
            (CstpPacketType.Data, MakePayload(60, 1)),
            (CstpPacketType.DpdRequest, MakePayload(3, 2)),
            (CstpPacketType.DpdResponse, Array.Empty<byte>()),
            (CstpPacketType.Keepalive, Array.Empty<byte>()),
            (CstpPacketType.Data, MakePayload(1500, 3)),
            (CstpPacketType.Compressed, MakePayload(17, 4)),
            (CstpPacketType.Disconnect, [0xb0, .. "Aborted by caller"u8]),
            (CstpPacketType.Terminate, Array.Empty<byte>()),
        };
        var stream = new List<byte>();
        foreach (var (type, payload) in frames)
        {
            var frame = new byte[CstpFrame.HeaderLength + payload.Length];
            CstpFrame.Write(frame, type, payload);
            stream.AddRange(frame);
        }

        var whole = StreamParser.ParseAll(stream.ToArray(), out var wholeEnd);
        Assert.Equal(CstpParseResult.NeedMore, wholeEnd);
        AssertFrames(frames, whole);

        var parser = new StreamParser();
        foreach (var chunk in Resplitter.Chunks(stream.ToArray(), new Random(seed)))
        {
            Assert.Equal(CstpParseResult.NeedMore, parser.Feed(chunk));
        }

        AssertFrames(frames, parser.Frames);
        Assert.Equal(0, parser.Buffered);
    }

    public static TheoryData<int, byte[], CstpParseResult> BadTailCases()
    {
        var data = new TheoryData<int, byte[], CstpParseResult>();
        foreach (int seed in Resplitter.Seeds.Take(8))
        {
            data.Add(seed, new byte[] { 0x53, 0x54, 0x46, 0x09, 0x00, 0x00, 0x00, 0x00 }, CstpParseResult.BadMagic);
            data.Add(seed, new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00, 0x80 }, CstpParseResult.BadReserved);
            data.Add(seed, new byte[] { 0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x0b, 0x00 }, CstpParseResult.UnknownType);
            data.Add(seed, new byte[] { 0x53, 0x54, 0x46, 0x01, 0x40, 0x01, 0x00, 0x00 }, CstpParseResult.TooLarge);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(BadTailCases))]
    public void Bad_header_after_good_frames_is_reported_once_complete(int seed, byte[] badHeader, CstpParseResult expected)
    {
        var good = new byte[CstpFrame.HeaderLength + 100];
        CstpFrame.Write(good, CstpPacketType.Data, MakePayload(100, seed));
        byte[] stream = [.. good, .. good, .. badHeader];

        var whole = StreamParser.ParseAll(stream, out var wholeEnd);
        Assert.Equal(expected, wholeEnd);
        Assert.Equal(2, whole.Count);

        var parser = new StreamParser();
        var results = Resplitter.Chunks(stream, new Random(seed)).Select(parser.Feed).ToList();
        Assert.All(results.Take(results.Count - 1), r => Assert.Equal(CstpParseResult.NeedMore, r));
        Assert.Equal(expected, results[^1]);
        Assert.Equal(2, parser.Frames.Count);
    }

    private static byte[] MakePayload(int length, int seed)
    {
        var payload = new byte[length];
        new Random(seed).NextBytes(payload);
        return payload;
    }

    private static void AssertFrames(List<(CstpPacketType Type, byte[] Payload)> expected, IReadOnlyList<(CstpPacketType Type, byte[] Payload)> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Type, actual[i].Type);
            Assert.Equal(expected[i].Payload, actual[i].Payload);
        }
    }

    // A minimal incremental reader, as the connection code will use the parser: grow a buffer, take whole frames off the front.
    private sealed class StreamParser
    {
        private const int MaxPayload = 16384;
        private readonly List<byte> _buffer = new();

        public List<(CstpPacketType Type, byte[] Payload)> Frames { get; } = new();

        public int Buffered => _buffer.Count;

        public static List<(CstpPacketType Type, byte[] Payload)> ParseAll(byte[] stream, out CstpParseResult end)
        {
            var parser = new StreamParser();
            end = parser.Feed(stream);
            return parser.Frames;
        }

        public CstpParseResult Feed(byte[] chunk)
        {
            _buffer.AddRange(chunk);
            while (true)
            {
                var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_buffer);
                var result = CstpFrame.TryParseHeader(span, MaxPayload, out var header);
                if (result != CstpParseResult.Ok)
                {
                    return result;
                }

                int total = CstpFrame.HeaderLength + header.PayloadLength;
                if (span.Length < total)
                {
                    return CstpParseResult.NeedMore;
                }

                Frames.Add((header.Type, span[CstpFrame.HeaderLength..total].ToArray()));
                _buffer.RemoveRange(0, total);
            }
        }
    }
}
