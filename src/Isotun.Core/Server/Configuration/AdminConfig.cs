using System.Net;

namespace Isotun.Server.Configuration;

/// <summary>
/// The admin plane. <see cref="Listen"/> (TCP, loopback by default; null when off) serves <c>GET /metrics</c>,
/// <c>/healthz</c> and <c>/readyz</c> to anyone who can reach it, and the API under <c>/api/v1/</c> only with the bearer
/// token read from <see cref="TokenFile"/>. <see cref="Socket"/> (a unix socket, mode 0600; null when off) serves all of
/// it to whoever may open the file, with no token.
/// </summary>
public sealed record AdminConfig(IPEndPoint? Listen)
{
    public string? Socket { get; init; }

    public string? TokenFile { get; init; }

    /// <summary>
    /// Host names (besides IP addresses and <c>localhost</c>) that a request over TCP may name in its Host header
    /// (<see cref="Metrics.HostFilter"/>); lower case, a leading <c>*.</c> for every name under a domain.
    /// </summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];

    /// <summary>Equal, <see cref="Hosts"/> item by item (a record compares lists by reference).</summary>
    public bool Same(AdminConfig other) => this with { Hosts = [] } == other with { Hosts = [] } && Hosts.SequenceEqual(other.Hosts);

    /// <summary>The fewest characters a bearer token may have (`isotun admin token` writes 64).</summary>
    public const int MinTokenLength = 32;

    /// <summary>The token in <paramref name="file"/>: its text without surrounding white space.</summary>
    public static string ReadToken(string file) => File.ReadAllText(file).Trim();
}
