using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// The same bytes as a request head (what a client sends the server) and as a response head (what a server sends the
/// client), under the default and a tiny head bound. An accepted head has only grammatical names and values, one
/// Content-Length, no Transfer-Encoding on a request, and parses the same from exactly its own bytes. The X-Isotun
/// header values the server reads from an accepted head go through their parsers too.
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
}
