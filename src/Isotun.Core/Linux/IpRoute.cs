namespace Isotun.Linux;

/// <summary>A route of the main table as `ip -j route show` gives it (<see cref="IpCommand.ExactRoutes"/>).</summary>
public sealed record IpRoute(string Type, string? Dev, string? Gateway, string? Protocol, string? Scope, string? PrefSrc, string? Metric)
{
    /// <summary>Whether it goes out through <paramref name="dev"/>, and by <paramref name="via"/> when given (an address
    /// compared as one: `ip` writes IPv6 addresses in their shortest form).</summary>
    public bool Through(string dev, string? via = null) =>
        Dev == dev && (via is null || Gateway == via
            || System.Net.IPAddress.TryParse(Gateway, out var gateway) && System.Net.IPAddress.TryParse(via, out var wanted) && gateway.Equals(wanted));

    /// <summary>The `ip` arguments that set this route for <paramref name="network"/> again.</summary>
    public string[] ReplaceArgs(string family, string network)
    {
        var args = new List<string> { family, "route", "replace", network };
        if (Gateway is not null) args.AddRange(["via", Gateway]);
        if (Dev is not null) args.AddRange(["dev", Dev]);
        if (Protocol is not null) args.AddRange(["proto", Protocol]);
        if (Scope is not null) args.AddRange(["scope", Scope]);
        if (PrefSrc is not null) args.AddRange(["src", PrefSrc]);
        if (Metric is not null) args.AddRange(["metric", Metric]);
        return [.. args];
    }

    /// <summary>As `ip route` would show it, for a message.</summary>
    public string Describe(string network) => string.Join(' ', ReplaceArgs("", network).Skip(3));
}
