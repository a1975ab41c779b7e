namespace Isotun.Protocol.Http;

/// <summary>
/// The <c>webvpn</c> session cookie as it travels in HTTP headers: set by the server with the login's "complete"
/// reply, sent back by the client in <c>Cookie:</c> on CONNECT (and on an XML logout). Its value is opaque here.
/// </summary>
public static class SessionCookie
{
    /// <summary>The cookie's name, as openconnect and ocserv spell it.</summary>
    public const string Name = "webvpn";

    /// <summary>
    /// The session cookie from the request's <c>Cookie</c> headers (every header, every <c>;</c>-separated pair):
    /// false when there is none or it is empty. The first one counts.
    /// </summary>
    public static bool TryGet(HttpHeaders headers, out string value)
    {
        ArgumentNullException.ThrowIfNull(headers);
        value = string.Empty;
        foreach (var line in headers.GetAll("Cookie"))
            foreach (var part in line.Split(';'))
            {
                var pair = part.Trim();
                if (pair.Length > Name.Length && pair.StartsWith(Name, StringComparison.Ordinal) && pair[Name.Length] == '=')
                {
                    value = pair[(Name.Length + 1)..];
                    return value.Length > 0;
                }
            }
        return false;
    }

    /// <summary>Longest session cookie a client takes from a server: far above any VPN server's, far below a header's limit.</summary>
    public const int MaxValueLength = 4096;

    /// <summary>
    /// Whether a server's session cookie (from <c>Set-Cookie</c> or the XML's <c>session-token</c>) is one a client may
    /// keep, send back in a header and print: 1 to <see cref="MaxValueLength"/> characters of RFC 6265's cookie-octet
    /// (printable ASCII but for the space, <c>"</c>, <c>,</c>, <c>;</c> and <c>\</c>). A line break from a hostile server
    /// would otherwise add a header to the CONNECT, or a line to <c>--authenticate</c>'s output.
    /// </summary>
    public static bool IsValidValue(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length is 0 or > MaxValueLength) return false;
        foreach (char c in value)
            if (c is < '!' or > '~' or '"' or ',' or ';' or '\\') return false;
        return true;
    }

    /// <summary>The <c>Set-Cookie</c> value that hands a client its session cookie (the server's own, sealed, value).</summary>
    public static string SetCookieValue(string cookie)
    {
        ArgumentNullException.ThrowIfNull(cookie);
        // Sealed cookies are base64url: anything that could end the pair or the header is a bug here, not a peer's input.
        if (!IsValidValue(cookie))
            throw new ArgumentException($"a cookie value must be 1 to {MaxValueLength} characters of printable ASCII without space, '\"', ',', ';' or '\\'", nameof(cookie));
        return $"{Name}={cookie}; Secure; HttpOnly";
    }

    /// <summary>
    /// The <c>Cookie</c> value that presents the session cookie. The value is the one the server gave (or the user
    /// pasted) and is sent as it is.
    /// </summary>
    public static string CookieValue(string cookie)
    {
        ArgumentNullException.ThrowIfNull(cookie);
        return $"{Name}={cookie}";
    }

    /// <summary>
    /// A <c>Set-Cookie</c> value's name and value (attributes after the first <c>;</c> are ignored, both sides trimmed);
    /// false when it has no <c>=</c> or no name.
    /// </summary>
    public static bool TryParseSetCookie(string header, out string name, out string value)
    {
        ArgumentNullException.ThrowIfNull(header);
        int end = header.IndexOf(';');
        var first = end < 0 ? header : header[..end];
        int eq = first.IndexOf('=');
        if (eq <= 0)
        {
            name = value = string.Empty;
            return false;
        }
        name = first[..eq].Trim();
        value = first[(eq + 1)..].Trim();
        return true;
    }
}
