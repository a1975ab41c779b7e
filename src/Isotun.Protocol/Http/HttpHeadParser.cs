using System.Text;

namespace Isotun.Protocol.Http;

/// <summary>
/// Parses HTTP/1.x heads (start line + headers, never bodies) from bytes received so far.
/// The peer is hostile: sizes are bounded, nothing throws on input, and anything that could
/// enable request smuggling (obs-fold, conflicting Content-Length, Transfer-Encoding on a
/// request) is rejected rather than interpreted. Only line endings are treated leniently.
/// </summary>
public static class HttpHeadParser
{
    /// <summary>Default limit for the head including the terminating blank line.</summary>
    public const int DefaultMaxHeadBytes = 16 * 1024;

    /// <summary>More header lines than this is <see cref="HttpParseResult.TooLarge"/>.</summary>
    public const int MaxHeaderCount = 100;

    // 2^31: the largest Content-Length accepted; anything beyond is nonsense for this protocol.
    private const long MaxContentLength = 1L << 31;

    /// <summary>Parses a request head. On <see cref="HttpParseResult.Ok"/>, <paramref name="consumed"/> covers the blank line.</summary>
    public static HttpParseResult TryParseRequest(ReadOnlySpan<byte> buffer, int maxHeadBytes, out HttpRequestHead? head, out int consumed) =>
        TryParseHead(buffer, maxHeadBytes, isRequest: true, static (line, headers) =>
            TryParseRequestLine(line, out string method, out string target, out string version)
                ? new HttpRequestHead { Method = method, Target = target, Version = version, Headers = headers }
                : null, out head, out consumed);

    /// <summary>Parses a response head. On <see cref="HttpParseResult.Ok"/>, <paramref name="consumed"/> covers the blank line.</summary>
    public static HttpParseResult TryParseResponse(ReadOnlySpan<byte> buffer, int maxHeadBytes, out HttpResponseHead? head, out int consumed) =>
        TryParseHead(buffer, maxHeadBytes, isRequest: false, static (line, headers) =>
            TryParseStatusLine(line, out string version, out int status, out string reason)
                ? new HttpResponseHead { Version = version, StatusCode = status, Reason = reason, Headers = headers }
                : null, out head, out consumed);

    /// <summary>Builds a head from its start line and the (not yet filled) headers; null when the start line is malformed.</summary>
    private delegate T? StartLine<T>(ReadOnlySpan<byte> line, HttpHeaders headers) where T : class;

    /// <summary>
    /// The head of a request or a response: found within <paramref name="maxHeadBytes"/>, its start line parsed first
    /// (a malformed one stops there), then its header lines.
    /// </summary>
    private static HttpParseResult TryParseHead<T>(ReadOnlySpan<byte> buffer, int maxHeadBytes, bool isRequest, StartLine<T> startLine, out T? head, out int consumed)
        where T : class
    {
        head = null;
        consumed = 0;
        var found = FindHead(buffer, maxHeadBytes, out int headLength);
        if (found != HttpParseResult.Ok)
        {
            return found;
        }

        var rest = buffer[..headLength];
        var headers = new HttpHeaders();
        var parsed = startLine(NextLine(ref rest), headers);
        if (parsed is null)
        {
            return HttpParseResult.Malformed;
        }

        var result = ParseHeaders(rest, headers, isRequest);
        if (result != HttpParseResult.Ok)
        {
            return result;
        }

        head = parsed;
        consumed = headLength;
        return HttpParseResult.Ok;
    }

    /// <summary>Digits only, at most 2^31. Shared with <see cref="HttpHeaders.ContentLength"/>.</summary>
    internal static bool TryParseContentLength(ReadOnlySpan<char> text, out long length)
    {
        length = 0;
        if (text.IsEmpty)
        {
            return false;
        }

        foreach (char c in text)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }

            length = (length * 10) + (c - '0');
            if (length > MaxContentLength)
            {
                return false;
            }
        }

        return true;
    }

    // Finds the first empty line (CRLF or bare LF) within maxHeadBytes; headLength includes it.
    private static HttpParseResult FindHead(ReadOnlySpan<byte> buffer, int maxHeadBytes, out int headLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeadBytes);
        headLength = 0;
        var window = buffer.Length > maxHeadBytes ? buffer[..maxHeadBytes] : buffer;
        int lineStart = 0;
        while (lineStart < window.Length)
        {
            int lf = window[lineStart..].IndexOf((byte)'\n');
            if (lf < 0)
            {
                break;
            }

            int lineEnd = lineStart + lf;
            int contentLength = lf > 0 && window[lineEnd - 1] == (byte)'\r' ? lf - 1 : lf;
            if (contentLength == 0)
            {
                headLength = lineEnd + 1;
                return HttpParseResult.Ok;
            }

            lineStart = lineEnd + 1;
        }

        return buffer.Length >= maxHeadBytes ? HttpParseResult.TooLarge : HttpParseResult.NeedMore;
    }

    // Returns the next line without its LF / CRLF and advances past it. The head always ends with a line break.
    private static ReadOnlySpan<byte> NextLine(ref ReadOnlySpan<byte> rest)
    {
        int lf = rest.IndexOf((byte)'\n');
        if (lf < 0)
        {
            var all = rest;
            rest = default;
            return all;
        }

        var line = rest[..lf];
        rest = rest[(lf + 1)..];
        return line.Length > 0 && line[^1] == (byte)'\r' ? line[..^1] : line;
    }

    private static HttpParseResult ParseHeaders(ReadOnlySpan<byte> rest, HttpHeaders headers, bool isRequest)
    {
        long? contentLength = null;
        while (true)
        {
            var line = NextLine(ref rest);
            if (line.IsEmpty)
            {
                return HttpParseResult.Ok;
            }

            // obs-fold: continuation lines are a smuggling vector, so reject instead of unfolding.
            if (line[0] is (byte)' ' or (byte)'\t')
            {
                return HttpParseResult.Malformed;
            }

            int colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                return HttpParseResult.Malformed;
            }

            var name = line[..colon];
            foreach (byte b in name)
            {
                if (!IsTokenChar(b))
                {
                    return HttpParseResult.Malformed;
                }
            }

            var value = line[(colon + 1)..].Trim(" \t"u8);
            foreach (byte b in value)
            {
                if ((b < 0x20 && b != (byte)'\t') || b == 0x7f)
                {
                    return HttpParseResult.Malformed;
                }
            }

            if (headers.Count >= MaxHeaderCount)
            {
                return HttpParseResult.TooLarge;
            }

            string nameText = Encoding.Latin1.GetString(name);
            string valueText = Encoding.Latin1.GetString(value);
            if (nameText.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (!TryParseContentLength(valueText, out long length) || (contentLength is { } previous && previous != length))
                {
                    return HttpParseResult.Malformed;
                }

                contentLength = length;
            }
            else if (isRequest && nameText.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                // We never accept chunked request bodies; refusing TE removes the CL/TE ambiguity entirely.
                return HttpParseResult.Malformed;
            }

            headers.Add(nameText, valueText);
        }
    }

    private static bool TryParseRequestLine(ReadOnlySpan<byte> line, out string method, out string target, out string version)
    {
        method = target = version = string.Empty;
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0)
        {
            return false;
        }

        var methodBytes = line[..sp1];
        var afterMethod = line[(sp1 + 1)..];
        int sp2 = afterMethod.IndexOf((byte)' ');
        if (sp2 <= 0)
        {
            return false;
        }

        var targetBytes = afterMethod[..sp2];
        var versionBytes = afterMethod[(sp2 + 1)..];

        foreach (byte b in methodBytes)
        {
            if (!IsTokenChar(b))
            {
                return false;
            }
        }

        foreach (byte b in targetBytes)
        {
            if (b is <= 0x20 or >= 0x7f)
            {
                return false;
            }
        }

        if (!TryParseVersion(versionBytes, out version))
        {
            return false;
        }

        method = Encoding.Latin1.GetString(methodBytes);
        target = Encoding.Latin1.GetString(targetBytes);
        return true;
    }

    private static bool TryParseStatusLine(ReadOnlySpan<byte> line, out string version, out int status, out string reason)
    {
        version = reason = string.Empty;
        status = 0;

        // "HTTP/1.x" SP 3DIGIT [SP reason]; a missing reason (even without its SP) is tolerated.
        if (line.Length < 12 || line[8] != (byte)' ' || !TryParseVersion(line[..8], out version))
        {
            return false;
        }

        var code = line.Slice(9, 3);
        if (code[0] is < (byte)'1' or > (byte)'9' || code[1] is < (byte)'0' or > (byte)'9' || code[2] is < (byte)'0' or > (byte)'9')
        {
            return false;
        }

        status = ((code[0] - '0') * 100) + ((code[1] - '0') * 10) + (code[2] - '0');
        var tail = line[12..];
        if (tail.IsEmpty)
        {
            return true;
        }

        if (tail[0] != (byte)' ')
        {
            return false;
        }

        var reasonBytes = tail[1..];
        foreach (byte b in reasonBytes)
        {
            if ((b < 0x20 && b != (byte)'\t') || b == 0x7f)
            {
                return false;
            }
        }

        reason = Encoding.Latin1.GetString(reasonBytes);
        return true;
    }

    private static bool TryParseVersion(ReadOnlySpan<byte> text, out string version)
    {
        if (text.SequenceEqual("HTTP/1.1"u8))
        {
            version = "HTTP/1.1";
            return true;
        }

        if (text.SequenceEqual("HTTP/1.0"u8))
        {
            version = "HTTP/1.0";
            return true;
        }

        version = string.Empty;
        return false;
    }

    // RFC 9110 tchar.
    private static bool IsTokenChar(byte b) =>
        b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
            or (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
            or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~';
}
