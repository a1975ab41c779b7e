using System.Net;
using Isotun.Config;
using Microsoft.AspNetCore.Http;

namespace Isotun.Metrics;

/// <summary>
/// Which Host headers an operator listener over TCP answers (the server's admin listener, the gateway's metrics): an
/// IP address, <c>localhost</c>, or a name the operator listed (<c>admin.hosts</c>; <c>*.example.net</c> for every name
/// under it). Anything else is refused with 421 and the name to add. This is what stops DNS rebinding: a web page
/// whose own name was pointed at 127.0.0.1 reaches the listener through the operator's browser, but with its own name
/// in the Host header, so it could otherwise read <c>/metrics</c> and the dashboard. Hand-written: ASP.NET Core's host
/// filtering lists names only, and a scraper that names the listener by any of its addresses must pass.
/// </summary>
public static class HostFilter
{
    /// <summary>Whether a request naming <paramref name="host"/> (the Host header, with or without a port) may be answered.</summary>
    public static bool Allows(string host, IReadOnlyCollection<string> names)
    {
        // No Host header (HTTP/1.0): no browser sends a request without one.
        if (host.Length == 0) return true;
        var hostString = new HostString(host);
        string name = hostString.Host;
        if (name.StartsWith('[') && name.EndsWith(']')) name = name[1..^1];
        if (IPAddress.TryParse(name, out _)) return true;
        name = name.TrimEnd('.');
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        foreach (var allowed in names)
        {
            if (allowed.StartsWith("*.", StringComparison.Ordinal)
                ? name.EndsWith(allowed[1..], StringComparison.OrdinalIgnoreCase) && name.Length > allowed.Length - 1
                : name.Equals(allowed, StringComparison.OrdinalIgnoreCase))
                return true;
        }
        return false;
    }

    /// <summary>
    /// The middleware: a request over TCP whose Host is not allowed (<see cref="Allows"/>) is answered 421, counted by
    /// <paramref name="refused"/>, and goes no further. A unix socket is not checked: no browser reaches one.
    /// </summary>
    public static Func<HttpContext, RequestDelegate, Task> Middleware(IReadOnlyCollection<string> names, Action? refused = null) => (ctx, next) =>
    {
        if (ctx.Connection.LocalIpAddress is null || Allows(ctx.Request.Headers.Host.ToString(), names)) return next(ctx);
        refused?.Invoke();
        ctx.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        // The name is the peer's, and is not echoed back (a page could use the answer); the operator knows what they typed.
        return ctx.Response.WriteAsync("this listener answers requests for its IP addresses and localhost; to reach it by a host name, list that name in admin.hosts\n");
    };

    /// <summary>Reads <c>admin.hosts</c>: host names (RFC 1123), each optionally <c>*.</c> and a domain.</summary>
    internal static IReadOnlyList<string> Read(ConfigWalker walker, YamlTreeNode? node, string path)
    {
        var names = new List<string>();
        foreach (var (text, itemPath) in walker.TextList(node, path))
        {
            string name = text.TrimEnd('.').ToLowerInvariant();
            if (IPAddress.TryParse(name.Trim('[', ']'), out _))
                walker.Error(itemPath, $"'{text}' is an IP address: every IP address is answered already; list host names here");
            else if (!Pki.PkiNames.IsValidHostName(name, allowWildcard: true))
                walker.Error(itemPath, $"'{text}' is not a host name (letters, digits and '-' in dot-separated labels; '*.' and a domain for every name under it)");
            else if (!names.Contains(name)) names.Add(name);
        }
        return names;
    }
}
