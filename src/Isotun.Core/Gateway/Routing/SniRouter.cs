namespace Isotun.Gateway.Routing;

/// <summary>
/// Picks a route for a server name: an exact name first, then the wildcard with the longest suffix
/// (<c>*.example.com</c> matches <c>a.example.com</c> and <c>a.b.example.com</c>, not <c>example.com</c>), then the default.
/// Immutable: a reload builds a new router and swaps it in, so a lookup never sees half a config.
/// A lookup walks the name's labels (one dictionary probe per dot), never the route list.
/// </summary>
public sealed class SniRouter<T>
    where T : class
{
    private readonly Dictionary<string, T> _exact;
    private readonly Dictionary<string, T> _suffixes; // ".example.com" for "*.example.com"

    /// <param name="routes">(pattern, route): an exact lower-case name or "*." + a name. Duplicates are a caller error.</param>
    public SniRouter(IEnumerable<(string Pattern, T Route)> routes, T? defaultRoute)
    {
        _exact = new Dictionary<string, T>(StringComparer.Ordinal);
        _suffixes = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var (pattern, route) in routes)
        {
            if (pattern.StartsWith("*.", StringComparison.Ordinal)) _suffixes.Add(pattern[1..], route);
            else _exact.Add(pattern, route);
        }

        Default = defaultRoute;
    }

    public T? Default { get; }

    /// <summary>The route for <paramref name="serverName"/> (already lower-case, as the ClientHello reader gives it), or the default.</summary>
    public T? Match(string? serverName)
    {
        if (string.IsNullOrEmpty(serverName)) return Default;
        if (_exact.TryGetValue(serverName, out var exact)) return exact;
        if (_suffixes.Count > 0)
        {
            // Longest suffix first: ".b.example.com", then ".example.com", then ".com".
            var lookup = _suffixes.GetAlternateLookup<ReadOnlySpan<char>>();
            int dot = serverName.IndexOf('.');
            while (dot > 0)
            {
                if (lookup.TryGetValue(serverName.AsSpan(dot), out var wild)) return wild;
                int next = serverName.IndexOf('.', dot + 1);
                dot = next;
            }
        }

        return Default;
    }
}
