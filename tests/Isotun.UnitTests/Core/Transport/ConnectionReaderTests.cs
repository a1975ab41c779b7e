using System.Text;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// The receive side of a connection: HTTP heads and bodies, then CSTP frames, from one buffer. Every
/// vector is also re-split at random into many reads; hostile input gives an outcome, never an exception.
/// </summary>
public class ConnectionReaderTests
{
    public static IEnumerable<object[]> Seeds => Protocol.Resplitter.Seeds.Select(s => new object[] { s });

    private static readonly byte[] Data1400 = Random(1400, 1);
    private static readonly byte[] DataMax = Random(CstpFrame.MaxPayloadLength, 2);

    private static readonly byte[] Post = Ascii("POST /alpha HTTP/1.1\r\nHost: vpn\r\nContent-Length: 11\r\nX-Aggregate-Auth: 1\r\n\r\n<auth-body>");
    private static readonly byte[] Connect = Ascii("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=abc\r\nX-CSTP-MTU: 1400\r\n\r\n");

    private static readonly byte[] ServerSide = Concat(
        Post,
        Connect,
        Frame(CstpPacketType.Data, Data1400),
        Frame(CstpPacketType.DpdRequest, [1, 2, 3, 4]),
        Frame(CstpPacketType.Keepalive, []),
        Frame(CstpPacketType.Data, DataMax),
        Frame(CstpPacketType.Data, [0x45]),
        Frame(CstpPacketType.Data, DataMax),
        Frame(CstpPacketType.Data, DataMax),
        Frame(CstpPacketType.Disconnect, [0xb0, (byte)'b', (byte)'y', (byte)'e']));

    /// <summary>What <see cref="ReadServerSideAsync"/> must see, whatever the read boundaries.</summary>
    private static readonly string[] ServerTranscript =
    [
        "head POST /alpha Content-Length=11",
        "body <auth-body>",
        "head CONNECT /CSCOSSLC/tunnel webvpn=abc",
        $"frame Data {Hash(Data1400)}",
        "frame DpdRequest 01020304",
        "frame Keepalive ",
        $"frame Data {Hash(DataMax)}",
        "frame Data 45",
        $"frame Data {Hash(DataMax)}",
        $"frame Data {Hash(DataMax)}",
        "frame Disconnect B0627965",
        "end EndOfStream",
    ];

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task Request_head_body_connect_and_frames_survive_any_split(int seed)
    {
        using var reader = new ConnectionReader(ChunkedReadStream.Resplit(ServerSide, seed));
        Assert.Equal(ServerTranscript, await ReadServerSideAsync(reader));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task Large_reads_that_cross_the_buffer_end_lose_nothing(int seed)
    {
        // Chunks up to 48 KiB: frames straddle the point where the 128 KiB buffer is compacted.
        using var reader = new ConnectionReader(ChunkedReadStream.Resplit(ServerSide, seed, maxChunk: 48 * 1024));
        Assert.Equal(ServerTranscript, await ReadServerSideAsync(reader));
    }

    [Fact]
    public async Task Bytes_that_arrive_with_the_head_are_not_lost()
    {
        // One read carries both requests and three frames: nothing may be dropped between the phases.
        var stream = new ChunkedReadStream([Concat(Post, Connect, Frame(CstpPacketType.Data, Data1400), Frame(CstpPacketType.DpdRequest, [9]), Frame(CstpPacketType.Keepalive, []))])
        {
            ForbidEndOfStream = true,
        };
        using var reader = new ConnectionReader(stream);
        var (_, post) = await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal("POST", post!.Method);
        Assert.Equal("<auth-body>", Encoding.ASCII.GetString((await reader.ReadBodyAsync(11, default))!));
        var (_, connect) = await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal("CONNECT", connect!.Method);

        var first = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal((FrameReadStatus.Ok, CstpPacketType.Data), (first.Status, first.Type));
        Assert.Equal(Data1400, first.Payload.ToArray());
        var dpd = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal((CstpPacketType.DpdRequest, (byte)9), (dpd.Type, dpd.Payload.Span[0]));
        Assert.Equal(CstpPacketType.Keepalive, (await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default)).Type);
        Assert.Equal(1, stream.Reads);
    }

    [Fact]
    public async Task A_head_and_the_first_frame_in_one_small_read_are_both_delivered()
    {
        var bytes = Concat(Ascii("HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\n\r\n"), Frame(CstpPacketType.Data, [0x45, 0, 0, 20]), Frame(CstpPacketType.DpdResponse, []));
        var stream = new ChunkedReadStream([bytes]) { ForbidEndOfStream = true };
        using var reader = new ConnectionReader(stream);

        var (result, head) = await reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal(HttpParseResult.Ok, result);
        Assert.Equal(200, head!.StatusCode);
        var data = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal(new byte[] { 0x45, 0, 0, 20 }, data.Payload.ToArray());
        var dpd = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        Assert.Equal((FrameReadStatus.Ok, CstpPacketType.DpdResponse, 0), (dpd.Status, dpd.Type, dpd.Payload.Length));
        Assert.Equal(1, stream.Reads);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public async Task Responses_with_and_without_content_length_survive_any_split(int seed)
    {
        var bytes = Concat(
            Ascii("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 9\r\n\r\n<xml-ok/>"),
            Ascii("HTTP/1.1 200 CONNECTED\r\nX-CSTP-Address: 10.10.0.2\r\n\r\n"),
            Frame(CstpPacketType.DpdRequest, []),
            Frame(CstpPacketType.Data, Data1400));
        using var reader = new ConnectionReader(ChunkedReadStream.Resplit(bytes, seed));

        var (r1, h1) = await reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal((HttpParseResult.Ok, 200, 9L), (r1, h1!.StatusCode, h1.Headers.ContentLength));
        Assert.Equal("<xml-ok/>", Encoding.ASCII.GetString((await reader.ReadBodyAsync(9, default))!));
        var (_, h2) = await reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal("10.10.0.2", h2!.Headers.Get("X-CSTP-Address"));
        Assert.Equal(CstpPacketType.DpdRequest, (await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default)).Type);
        Assert.Equal(Data1400, (await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default)).Payload.ToArray());
        Assert.Equal(FrameReadStatus.EndOfStream, (await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default)).Status);

        // HTTP/1.0 style: the body runs to the end of the stream.
        var old = Concat(Ascii("HTTP/1.0 200 OK\r\n\r\n"), Ascii("<config-auth/>"));
        using var reader10 = new ConnectionReader(ChunkedReadStream.Resplit(old, seed));
        Assert.Equal(HttpParseResult.Ok, (await reader10.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default)).Result);
        Assert.Equal("<config-auth/>", Encoding.ASCII.GetString((await reader10.ReadToEndAsync(64 * 1024, default))!));
    }

    public static TheoryData<string, byte[], HttpParseResult> BadHeads() => new()
    {
        { "head over the limit, many lines", Concat(Ascii("GET / HTTP/1.1\r\n"), Repeat("X-Pad: " + new string('a', 100) + "\r\n", 200)), HttpParseResult.TooLarge },
        { "one endless line", Ascii("GET /" + new string('a', 20_000)), HttpParseResult.TooLarge },
        { "TLS bytes on the plain side", Concat([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc], Ascii("\r\n\r\n")), HttpParseResult.Malformed },
        { "binary garbage with line ends", Concat(Random(300, 7).Select(b => b == (byte)'\n' ? (byte)'x' : b).ToArray(), Ascii("\r\n\r\n")), HttpParseResult.Malformed },
        { "header without a colon", Ascii("GET / HTTP/1.1\r\nno colon here\r\n\r\n"), HttpParseResult.Malformed },
        { "obs-fold", Ascii("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"), HttpParseResult.Malformed },
        { "request smuggling: chunked request", Ascii("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), HttpParseResult.Malformed },
        { "two different lengths", Ascii("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), HttpParseResult.Malformed },
        { "HTTP/2 preface", Ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HttpParseResult.Malformed },
        { "too many headers", Concat(Ascii("GET / HTTP/1.1\r\n"), Repeat("X: 1\r\n", 101), Ascii("\r\n")), HttpParseResult.TooLarge },
        { "peer closes in the head", Ascii("GET / HTTP/1.1\r\nHost: x\r\n"), HttpParseResult.NeedMore },
        { "peer closes at once", [], HttpParseResult.NeedMore },
    };

    [Theory]
    [MemberData(nameof(BadHeads))]
    public async Task Bad_request_heads_give_an_outcome_under_any_split(string name, byte[] bytes, HttpParseResult expected)
    {
        foreach (int seed in Protocol.Resplitter.Seeds)
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(bytes, seed, maxChunk: 512));
            var (result, head) = await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
            Assert.True(expected == result, $"{name}, seed {seed}: {result}");
            Assert.Null(head);
        }
    }

    [Fact]
    public async Task A_head_just_under_the_limit_is_read_and_one_byte_over_is_not()
    {
        const int limit = 1024;
        var start = "GET / HTTP/1.1\r\nX-Pad: ";
        var exact = Ascii(start + new string('a', limit - start.Length - 4) + "\r\n\r\n");
        Assert.Equal(limit, exact.Length);
        using (var reader = new ConnectionReader(ChunkedReadStream.Resplit(exact, 3)))
            Assert.Equal(HttpParseResult.Ok, (await reader.ReadRequestHeadAsync(limit, default)).Result);

        var over = Ascii(start + new string('a', limit - start.Length - 3) + "\r\n\r\n");
        using (var reader = new ConnectionReader(ChunkedReadStream.Resplit(over, 3)))
            Assert.Equal(HttpParseResult.TooLarge, (await reader.ReadRequestHeadAsync(limit, default)).Result);
    }

    public static TheoryData<string, byte[], CstpParseResult> BadFrames() => new()
    {
        { "wrong magic", [0x53, 0x54, 0x46, 0x02, 0x00, 0x00, 0x00, 0x00], CstpParseResult.BadMagic },
        { "an HTTP request where a frame belongs", Ascii("GET / HTTP/1.1\r\n\r\n"), CstpParseResult.BadMagic },
        { "nonzero reserved byte", [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00, 0x01], CstpParseResult.BadReserved },
        { "unknown type", [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x06, 0x00], CstpParseResult.UnknownType },
        { "longer than allowed", [0x53, 0x54, 0x46, 0x01, 0x07, 0xd0, 0x00, 0x00], CstpParseResult.TooLarge },
        { "longest the field allows", [0x53, 0x54, 0x46, 0x01, 0xff, 0xff, 0x00, 0x00], CstpParseResult.TooLarge },
    };

    [Theory]
    [MemberData(nameof(BadFrames))]
    public async Task Bad_frames_after_a_good_one_are_reported_not_thrown(string name, byte[] bad, CstpParseResult expected)
    {
        // The payload bound is 1500 here, as a caller with a small limit would pass.
        var bytes = Concat(Frame(CstpPacketType.Data, Data1400), bad, Random(2000, 9));
        foreach (int seed in Protocol.Resplitter.Seeds)
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(bytes, seed));
            var good = await reader.ReadFrameAsync(1500, default);
            Assert.Equal(Data1400, good.Payload.ToArray());
            var frame = await reader.ReadFrameAsync(1500, default);
            Assert.True((FrameReadStatus.BadFrame, expected) == (frame.Status, frame.Parse), $"{name}, seed {seed}: {frame.Status} {frame.Parse}");
            Assert.True(frame.Payload.IsEmpty);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(8 + 1399)]
    public async Task A_peer_that_closes_inside_a_frame_ends_the_stream(int cut)
    {
        var bytes = Frame(CstpPacketType.Data, Data1400)[..cut];
        foreach (int seed in Protocol.Resplitter.Seeds)
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(bytes, seed));
            var frame = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
            Assert.Equal(FrameReadStatus.EndOfStream, frame.Status);
        }
    }

    [Fact]
    public async Task Bodies_are_bounded_and_a_short_body_is_null()
    {
        using (var reader = new ConnectionReader(ChunkedReadStream.Whole(Ascii("abc"))))
        {
            Assert.Null(await reader.ReadBodyAsync(-1, default));
            Assert.Null(await reader.ReadBodyAsync(ConnectionReader.BufferSize * 2, default));
            Assert.Null(await reader.ReadBodyAsync(4, default)); // the peer closed after 3 bytes
        }

        var big = Random(64 * 1024, 11);
        foreach (int seed in Protocol.Resplitter.Seeds.Take(5))
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(big, seed, maxChunk: 4096));
            Assert.Equal(big, await reader.ReadBodyAsync(big.Length, default));
        }

        using (var reader = new ConnectionReader(ChunkedReadStream.Resplit(Random(5000, 12), 1)))
            Assert.Null(await reader.ReadToEndAsync(4999, default));
        using (var reader = new ConnectionReader(ChunkedReadStream.Resplit(Random(5000, 12), 1)))
            Assert.Equal(Random(5000, 12), await reader.ReadToEndAsync(5000, default));
    }

    [Fact]
    public async Task Caller_bounds_larger_than_the_buffer_end_in_an_outcome_not_a_spin()
    {
        // More than the buffer holds, without a blank line or an end: the reader must answer, not loop.
        var endlessHead = Concat(Ascii("GET / HTTP/1.1\r\n"), Repeat("X-Pad: " + new string('a', 1000) + "\r\n", 200));
        var head = Task.Run(async () =>
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(endlessHead, 1, maxChunk: 8192));
            return (await reader.ReadRequestHeadAsync(1024 * 1024, default)).Result;
        });
        Assert.Equal(HttpParseResult.TooLarge, await head.WaitAsync(TimeSpan.FromSeconds(30)));

        var longBody = Random(300 * 1024, 13);
        var body = Task.Run(async () =>
        {
            using var reader = new ConnectionReader(ChunkedReadStream.Resplit(longBody, 1, maxChunk: 8192));
            return await reader.ReadToEndAsync(1024 * 1024, default);
        });
        Assert.Null(await body.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_silent_peer_is_cut_off_by_the_callers_token()
    {
        using var reader = new ConnectionReader(new SilentStream());
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, cts.Token));
    }

    [Fact]
    public void Dispose_twice_is_harmless()
    {
        var reader = new ConnectionReader(ChunkedReadStream.Whole([]));
        reader.Dispose();
        reader.Dispose();
    }

    private static async Task<List<string>> ReadServerSideAsync(ConnectionReader reader)
    {
        var seen = new List<string>();
        var (r1, post) = await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal(HttpParseResult.Ok, r1);
        seen.Add($"head {post!.Method} {post.Target} Content-Length={post.Headers.ContentLength}");
        var body = await reader.ReadBodyAsync((int)post.Headers.ContentLength!.Value, default);
        seen.Add("body " + Encoding.ASCII.GetString(body!));
        var (r2, connect) = await reader.ReadRequestHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, default);
        Assert.Equal(HttpParseResult.Ok, r2);
        seen.Add($"head {connect!.Method} {connect.Target} {connect.Headers.Get("Cookie")}");
        while (true)
        {
            var frame = await reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
            if (frame.Status != FrameReadStatus.Ok)
            {
                seen.Add($"end {frame.Status}");
                return seen;
            }
            var p = frame.Payload.Span;
            seen.Add($"frame {frame.Type} {(p.Length > 16 ? Hash(p.ToArray()) : Convert.ToHexString(p))}");
        }
    }

    internal static byte[] Frame(CstpPacketType type, byte[] payload)
    {
        var b = new byte[CstpFrame.HeaderLength + payload.Length];
        CstpFrame.Write(b, type, payload);
        return b;
    }

    private static string Hash(byte[] data) => $"{data.Length}:{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data))[..16]}";

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static byte[] Repeat(string s, int times) => Ascii(string.Concat(Enumerable.Repeat(s, times)));

    private static byte[] Random(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>Never delivers a byte; only cancellation ends a read.</summary>
    private sealed class SilentStream : ReadOnlyStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
