using System.Text;
using Isotun.Protocol.Http;

namespace Isotun.UnitTests.Protocol.Http;

public class HttpHeadParserTests
{
    // openconnect 9.01 CONNECT as seen by ocserv (reference 1.2), with --no-dtls.
    private const string ConnectRequest =
        "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n" +
        "Host: 198.18.0.1\r\n" +
        "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n" +
        "Cookie: webvpn=AbCdEf0123456789-_xyz\r\n" +
        "X-CSTP-Version: 1\r\n" +
        "X-CSTP-Hostname: vm\r\n" +
        "X-CSTP-Accept-Encoding: oc-lz4,lzs\r\n" +
        "X-CSTP-Base-MTU: 1500\r\n" +
        "X-CSTP-MTU: 1390\r\n" +
        "X-CSTP-Address-Type: IPv6,IPv4\r\n" +
        "X-CSTP-Full-IPv6-Capability: true\r\n" +
        "\r\n";

    // ocserv 1.1.6 reply, verbatim from reference 1.2.
    private const string ConnectedResponse =
        "HTTP/1.1 200 CONNECTED\r\n" +
        "X-CSTP-Version: 1\r\n" +
        "X-CSTP-Server-Name: ocserv 1.1.6\r\n" +
        "X-CSTP-Hostname: vm\r\n" +
        "X-CSTP-DPD: 60\r\n" +
        "X-CSTP-Address: 198.19.1.50\r\n" +
        "X-CSTP-Netmask: 255.255.255.0\r\n" +
        "X-CSTP-DNS: 198.19.1.1\r\n" +
        "X-CSTP-Split-Include: 198.19.1.0/255.255.255.0\r\n" +
        "X-CSTP-Tunnel-All-DNS: false\r\n" +
        "X-CSTP-Client-Bypass-Protocol: false\r\n" +
        "X-CSTP-Keepalive: 300\r\n" +
        "X-CSTP-Idle-Timeout: none\r\n" +
        "X-CSTP-Smartcard-Removal-Disconnect: true\r\n" +
        "X-CSTP-Rekey-Time: 172828\r\n" +
        "X-CSTP-Rekey-Method: new-tunnel\r\n" +
        "X-CSTP-Session-Timeout: 0\r\n" +
        "X-CSTP-Session-Timeout-Remaining: 0\r\n" +
        "X-CSTP-Disconnected-Timeout: none\r\n" +
        "X-CSTP-Keep: true\r\n" +
        "X-CSTP-TCP-Keepalive: true\r\n" +
        "X-CSTP-License: accept\r\n" +
        "X-CSTP-Base-MTU: 1500\r\n" +
        "X-CSTP-MTU: 1472\r\n" +
        "\r\n";

    private const string AuthPost =
        "POST / HTTP/1.1\r\n" +
        "Host: vpn.example\r\n" +
        "User-Agent: Open AnyConnect VPN Agent v9.01-3\r\n" +
        "X-Transcend-Version: 1\r\n" +
        "X-Aggregate-Auth: 1\r\n" +
        "X-Support-HTTP-Auth: true\r\n" +
        "Content-Type: application/xml; charset=utf-8\r\n" +
        "Content-Length: 427\r\n" +
        "\r\n";

    [Fact]
    public void Parses_openconnect_connect_request()
    {
        var bytes = Encoding.ASCII.GetBytes(ConnectRequest + "STF\x01");
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseRequest(bytes, HttpHeadParser.DefaultMaxHeadBytes, out var head, out int consumed));
        Assert.Equal(ConnectRequest.Length, consumed);
        Assert.NotNull(head);
        Assert.Equal("CONNECT", head.Method);
        Assert.Equal("/CSCOSSLC/tunnel", head.Target);
        Assert.Equal("HTTP/1.1", head.Version);
        Assert.Equal(10, head.Headers.Count);
        Assert.Equal("webvpn=AbCdEf0123456789-_xyz", head.Headers.Get("cookie"));
        Assert.Equal("1390", head.Headers.Get("X-CSTP-MTU"));
        Assert.Equal("IPv6,IPv4", head.Headers.Get("x-cstp-address-type"));
        Assert.Null(head.Headers.ContentLength);
        Assert.Null(head.Headers.Get("X-DTLS-Master-Secret"));
    }

    [Fact]
    public void Parses_ocserv_connected_response()
    {
        var bytes = Encoding.ASCII.GetBytes(ConnectedResponse);
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseResponse(bytes, HttpHeadParser.DefaultMaxHeadBytes, out var head, out int consumed));
        Assert.Equal(bytes.Length, consumed);
        Assert.NotNull(head);
        Assert.Equal("HTTP/1.1", head.Version);
        Assert.Equal(200, head.StatusCode);
        Assert.Equal("CONNECTED", head.Reason);
        Assert.Equal(23, head.Headers.Count);
        Assert.Equal("198.19.1.50", head.Headers.Get("X-CSTP-Address"));
        Assert.Equal("1472", head.Headers.Get("X-CSTP-MTU"));
        Assert.Equal("ocserv 1.1.6", head.Headers.Get("X-CSTP-Server-Name"));
    }

    [Fact]
    public void Headers_keep_duplicates_in_order()
    {
        var bytes = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-A:  spaced \t\r\nset-cookie: b=2\r\n\r\n");
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseResponse(bytes, 1024, out var head, out _));
        Assert.Equal(new[] { "a=1", "b=2" }, head!.Headers.GetAll("SET-COOKIE"));
        Assert.Empty(head.Headers.GetAll("X-Missing"));
        Assert.Equal("spaced", head.Headers.Get("x-a"));
        Assert.Equal(3, head.Headers.Count());
    }

    [Fact]
    public void Content_length_is_exposed()
    {
        var bytes = Encoding.ASCII.GetBytes(AuthPost);
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseRequest(bytes, HttpHeadParser.DefaultMaxHeadBytes, out var head, out _));
        Assert.Equal(427, head!.Headers.ContentLength);
    }

    public static TheoryData<string, HttpParseResult> RequestVectors() => new()
    {
        { ConnectRequest, HttpParseResult.Ok },
        { AuthPost, HttpParseResult.Ok },
        { "GET / HTTP/1.0\r\n\r\n", HttpParseResult.Ok },
        { "GET / HTTP/1.1\n\n", HttpParseResult.Ok },
        { "GET / HTTP/1.1\nHost: a\r\n\n", HttpParseResult.Ok },
        { "POST /auth HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n", HttpParseResult.Ok },
        { "POST / HTTP/1.1\r\nContent-Length: 2147483648\r\n\r\n", HttpParseResult.Ok },
        { "POST / HTTP/1.1\r\nX-Empty:\r\n\r\n", HttpParseResult.Ok },
        { "POST / HTTP/1.1\r\nX-Tab: a\tb\r\n\r\n", HttpParseResult.Ok },
        { "M!#$%&'*+-.^_`|~9 / HTTP/1.1\r\n\r\n", HttpParseResult.Ok },

        // Request line.
        { "\r\n", HttpParseResult.Malformed },
        { "\n", HttpParseResult.Malformed },
        { "GET /\r\n\r\n", HttpParseResult.Malformed },
        { "GET  / HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1 \r\n\r\n", HttpParseResult.Malformed },
        { "GET / / HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "G(T / HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "GET /a\x01 HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "GET /\x7f HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/2.0\r\n\r\n", HttpParseResult.Malformed },
        { "GET / http/1.1\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\rX: y\r\n\r\n", HttpParseResult.Malformed },
        { " GET / HTTP/1.1\r\n\r\n", HttpParseResult.Malformed },

        // Header lines.
        { "GET / HTTP/1.1\r\nNoColon\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\n: value\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nName : v\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nN(a): v\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", HttpParseResult.Malformed },
        { "GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n", HttpParseResult.Malformed },

        // Content-Length and Transfer-Encoding.
        { "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 2147483649\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", HttpParseResult.Malformed },
        { "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HttpParseResult.Malformed },

        // Bounds.
        { ManyHeaders("GET / HTTP/1.1", HttpHeadParser.MaxHeaderCount), HttpParseResult.Ok },
        { ManyHeaders("GET / HTTP/1.1", HttpHeadParser.MaxHeaderCount + 1), HttpParseResult.TooLarge },
        { Oversize("GET / HTTP/1.1\r\n"), HttpParseResult.TooLarge },
    };

    public static TheoryData<string, HttpParseResult> ResponseVectors() => new()
    {
        { ConnectedResponse, HttpParseResult.Ok },
        { "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", HttpParseResult.Ok },
        { "HTTP/1.1 503 Service Unavailable\r\nX-Reason: Server full\r\n\r\n", HttpParseResult.Ok },
        { "HTTP/1.0 200\r\n\r\n", HttpParseResult.Ok },
        { "HTTP/1.1 200 \r\n\r\n", HttpParseResult.Ok },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HttpParseResult.Ok },
        { "HTTP/1.1 200 OK\nX: y\n\n", HttpParseResult.Ok },
        { "HTTP/1.1 20 OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 2000 OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 099 OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 abc OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1  200 OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 200 O\x01K\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/3 200 OK\r\n\r\n", HttpParseResult.Malformed },
        { "ICY 200 OK\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", HttpParseResult.Malformed },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HttpParseResult.Malformed },
        { ManyHeaders("HTTP/1.1 200 OK", HttpHeadParser.MaxHeaderCount + 1), HttpParseResult.TooLarge },
        { Oversize("HTTP/1.1 200 OK\r\n"), HttpParseResult.TooLarge },
    };

    [Theory]
    [MemberData(nameof(RequestVectors))]
    public void Request_vectors_whole(string text, HttpParseResult expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        var result = HttpHeadParser.TryParseRequest(bytes, HttpHeadParser.DefaultMaxHeadBytes, out var head, out int consumed);
        Assert.Equal(expected, result);
        Assert.Equal(expected == HttpParseResult.Ok, head is not null);
        Assert.Equal(expected == HttpParseResult.Ok ? bytes.Length : 0, consumed);
    }

    [Theory]
    [MemberData(nameof(ResponseVectors))]
    public void Response_vectors_whole(string text, HttpParseResult expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        var result = HttpHeadParser.TryParseResponse(bytes, HttpHeadParser.DefaultMaxHeadBytes, out var head, out int consumed);
        Assert.Equal(expected, result);
        Assert.Equal(expected == HttpParseResult.Ok, head is not null);
        Assert.Equal(expected == HttpParseResult.Ok ? bytes.Length : 0, consumed);
    }

    [Theory]
    [MemberData(nameof(RequestVectors))]
    public void Request_vectors_resplit(string text, HttpParseResult expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        foreach (int seed in Resplitter.Seeds)
        {
            AssertResplit(bytes, expected, seed, static (ReadOnlySpan<byte> b, out int c) => HttpHeadParser.TryParseRequest(b, HttpHeadParser.DefaultMaxHeadBytes, out _, out c));
        }
    }

    [Theory]
    [MemberData(nameof(ResponseVectors))]
    public void Response_vectors_resplit(string text, HttpParseResult expected)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        foreach (int seed in Resplitter.Seeds)
        {
            AssertResplit(bytes, expected, seed, static (ReadOnlySpan<byte> b, out int c) => HttpHeadParser.TryParseResponse(b, HttpHeadParser.DefaultMaxHeadBytes, out _, out c));
        }
    }

    [Fact]
    public void Terminator_beyond_the_limit_is_too_large()
    {
        var bytes = Encoding.ASCII.GetBytes(AuthPost);
        Assert.Equal(HttpParseResult.TooLarge, HttpHeadParser.TryParseRequest(bytes, bytes.Length - 1, out _, out _));
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseRequest(bytes, bytes.Length, out _, out _));
        Assert.Equal(HttpParseResult.NeedMore, HttpHeadParser.TryParseRequest(bytes.AsSpan(0, 50), bytes.Length, out _, out _));
    }

    [Fact]
    public void Body_bytes_after_the_head_are_not_consumed()
    {
        var bytes = Encoding.ASCII.GetBytes(AuthPost + "<?xml version=\"1.0\"?>\r\n\r\n");
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseRequest(bytes, HttpHeadParser.DefaultMaxHeadBytes, out _, out int consumed));
        Assert.Equal(AuthPost.Length, consumed);
    }

    [Fact]
    public void Latin1_values_are_preserved()
    {
        var bytes = Encoding.Latin1.GetBytes("HTTP/1.1 200 Ok\r\nX-Banner: caf\u00e9\r\n\r\n");
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseResponse(bytes, 1024, out var head, out _));
        Assert.Equal("caf\u00e9", head!.Headers.Get("X-Banner"));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(11);
        var alphabet = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n:Content-Length 0123456789\t \x00\xff");
        for (int i = 0; i < 5000; i++)
        {
            var bytes = new byte[random.Next(0, 300)];
            for (int j = 0; j < bytes.Length; j++)
            {
                bytes[j] = random.Next(3) == 0 ? (byte)random.Next(256) : alphabet[random.Next(alphabet.Length)];
            }

            int max = random.Next(1, 400);
            var request = HttpHeadParser.TryParseRequest(bytes, max, out var req, out int consumed);
            Assert.True(Enum.IsDefined(request));
            Assert.InRange(consumed, 0, Math.Min(max, bytes.Length));
            Assert.Equal(request == HttpParseResult.Ok, req is not null);
            var response = HttpHeadParser.TryParseResponse(bytes, max, out _, out _);
            Assert.True(Enum.IsDefined(response));
        }
    }

    private delegate HttpParseResult Parse(ReadOnlySpan<byte> buffer, out int consumed);

    // Feed the vector chunk by chunk into a growing buffer: NeedMore until the last byte, then the whole-buffer result.
    private static void AssertResplit(byte[] bytes, HttpParseResult expected, int seed, Parse parse)
    {
        var buffer = new List<byte>();
        int start = 0;
        foreach (int end in Resplitter.Boundaries(bytes.Length, new Random(seed)))
        {
            buffer.AddRange(bytes[start..end]);
            start = end;
            var result = parse(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(buffer), out int consumed);
            if (end < bytes.Length)
            {
                Assert.Equal(HttpParseResult.NeedMore, result);
            }
            else
            {
                Assert.Equal(expected, result);
                Assert.Equal(expected == HttpParseResult.Ok ? bytes.Length : 0, consumed);
            }
        }
    }

    private static string ManyHeaders(string startLine, int count)
    {
        var sb = new StringBuilder(startLine).Append("\r\n");
        for (int i = 0; i < count; i++)
        {
            sb.Append("X-H").Append(i).Append(": v\r\n");
        }

        return sb.Append("\r\n").ToString();
    }

    // Exactly DefaultMaxHeadBytes long and never terminated.
    private static string Oversize(string startLine)
    {
        var sb = new StringBuilder(startLine);
        while (sb.Length < HttpHeadParser.DefaultMaxHeadBytes)
        {
            sb.Append("X-Pad: ").Append('a', 90).Append("\r\n");
        }

        return sb.ToString(0, HttpHeadParser.DefaultMaxHeadBytes);
    }
}
