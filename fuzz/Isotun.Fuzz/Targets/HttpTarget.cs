using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// The same bytes as a request head (what a client sends the server) and as a response head (what a server sends the
/// client), under the default and a tiny head bound. An accepted head has only grammatical names and values, one
/// Content-Length, no Transfer-Encoding on a request, and parses the same from exactly its own bytes. The X-Isotun
/// header values the server reads from an accepted head go through their parsers too, and so do the session cookie
/// (from a request) and the CONNECT reply (from a response), which must write itself back to a reply that reads the same.
/// </summary>
public sealed class HttpTarget : IFuzzTarget
{
    private static readonly int[] MaxHeadBytes = [HttpHeadParser.DefaultMaxHeadBytes, 64];

    public string Name => "http";

    public string Description => "HTTP/1.x request and response heads (HttpHeadParser), and the X-Isotun header values";

    public void Run(ReadOnlySpan<byte> input)
    {
        foreach (int max in MaxHeadBytes)
        {
            var request = HttpHeadParser.TryParseRequest(input, max, out var requestHead, out int consumed);
            Check(request, requestHead?.Headers, consumed, input.Length, max);
            if (request == HttpParseResult.Ok)
            {
                Invariant.That(requestHead!.Method.Length > 0 && requestHead.Target.Length > 0);
                Invariant.That(requestHead.Version is "HTTP/1.0" or "HTTP/1.1");
                Invariant.That(requestHead.Headers.Get("Transfer-Encoding") is null);
                var again = HttpHeadParser.TryParseRequest(input[..consumed], max, out var head2, out int consumed2);
                Invariant.That(again == HttpParseResult.Ok && consumed2 == consumed && head2!.Headers.Count == requestHead.Headers.Count);
                ReadIsotunHeaders(requestHead.Headers);
                ReadSessionCookie(requestHead.Headers);
            }

            var response = HttpHeadParser.TryParseResponse(input, max, out var responseHead, out consumed);
            Check(response, responseHead?.Headers, consumed, input.Length, max);
            if (response == HttpParseResult.Ok)
            {
                Invariant.That(responseHead!.StatusCode is >= 100 and <= 999);
                Invariant.That(responseHead.Version is "HTTP/1.0" or "HTTP/1.1");
                var again = HttpHeadParser.TryParseResponse(input[..consumed], max, out var head2, out int consumed2);
                Invariant.That(again == HttpParseResult.Ok && consumed2 == consumed && head2!.StatusCode == responseHead.StatusCode);
                ReadIsotunHeaders(responseHead.Headers);
                ReadConnectReply(responseHead.Headers);
            }
        }
    }

    private static void Check(HttpParseResult result, HttpHeaders? headers, int consumed, int length, int max)
    {
        Invariant.Defined(result);
        Invariant.That((result == HttpParseResult.Ok) == (headers is not null));
        if (result != HttpParseResult.Ok)
        {
            Invariant.That(consumed == 0);
            return;
        }

        Invariant.Within(consumed, Math.Min(length, max));
        Invariant.That(headers!.Count <= HttpHeadParser.MaxHeaderCount);
        string? contentLength = null;
        foreach (var (name, value) in headers)
        {
            Invariant.That(name.Length > 0 && !name.AsSpan().ContainsAny(" \t\r\n:"));
            foreach (char c in value)
            {
                Invariant.That((c >= 0x20 || c == '\t') && c != 0x7f);
            }

            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                // Duplicates are accepted only when they agree as numbers.
                Invariant.That(contentLength is null || long.Parse(contentLength) == long.Parse(value));
                contentLength = value;
            }
        }

        Invariant.That(headers.ContentLength is null or (>= 0 and <= 1L << 31));
        Invariant.That((contentLength is null) == (headers.ContentLength is null));
    }

    private static void ReadIsotunHeaders(HttpHeaders headers)
    {
        var extensions = IsotunExtensions.Parse(headers.Get(IsotunExtensions.Header));
        Invariant.That(((int)extensions & ~0xF) == 0);
        IsotunExtensions.Format(extensions);
        int? queues = IsotunExtensions.ParseCount(headers.Get(IsotunExtensions.QueuesHeader), 1, IsotunExtensions.MaxQueues);
        Invariant.That(queues is null or (>= 1 and <= IsotunExtensions.MaxQueues));
        int? queue = IsotunExtensions.ParseCount(headers.Get(IsotunExtensions.QueueHeader), 1, IsotunExtensions.MaxQueues - 1);
        Invariant.That(queue is null or (>= 1 and < IsotunExtensions.MaxQueues));
    }

    private static void ReadSessionCookie(HttpHeaders headers)
    {
        if (SessionCookie.TryGet(headers, out var cookie))
        {
            Invariant.That(cookie.Length > 0 && !cookie.Contains(';'));
        }
    }

    private static void ReadConnectReply(HttpHeaders headers)
    {
        var result = ConnectReply.TryParse(headers, out var reply, out var problem);
        Invariant.Defined(result);
        Invariant.That((result == ConnectReplyParseResult.Ok) == (reply is not null));
        Invariant.That((problem is not null) == (result is ConnectReplyParseResult.BadMtu or ConnectReplyParseResult.BadAddress));
        Invariant.That(problem is null || (problem.Length <= 41 && !problem.Any(char.IsControl)));
        if (reply is null) return;
        Invariant.That(reply.Mtu is >= ConnectReply.MinMtu and <= ConnectReply.MaxMtu);
        Invariant.That(reply.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
        Invariant.That(reply.Dns.Count <= ConnectReply.MaxDns);
        Invariant.That(reply.Queues is >= 1 and <= IsotunExtensions.MaxQueues && reply.Queue is >= 0 and < IsotunExtensions.MaxQueues);
        foreach (var route in reply.SplitInclude)
        {
            Invariant.That(route.PrefixLength >= 0 && route.PrefixLength <= route.Network.GetAddressBytes().Length * 8);
        }

        // What a client read, a server could write: the bytes read back the same (when they fit in a head).
        var written = reply.Write();
        if (reply.SplitInclude.Count + 32 > HttpHeadParser.MaxHeaderCount) return;
        var again = HttpHeadParser.TryParseResponse(written, 1 << 20, out var head, out _);
        Invariant.That(again == HttpParseResult.Ok);
        Invariant.That(ConnectReply.TryParse(head!.Headers, out var back, out _) == ConnectReplyParseResult.Ok);
        Invariant.That(back!.Address.Equals(reply.Address) && back.Mtu == reply.Mtu && Equals(back.Netmask, reply.Netmask));
        Invariant.That(back.Dns.SequenceEqual(reply.Dns) && back.Extensions == reply.Extensions);
        Invariant.That((back.Dpd, back.Keepalive, back.IdleTimeout, back.SessionTimeout) == (reply.Dpd, reply.Keepalive, reply.IdleTimeout, reply.SessionTimeout));
    }
}
