using System.Net;
using Isotun.Config;

namespace Isotun.Gateway.Configuration;

/// <summary>The whole gateway configuration, immutable, with defaults applied and every path absolute.</summary>
public sealed record GatewayConfig(
    IPEndPoint Listen,
    IPEndPoint? Admin,
    IReadOnlyList<GatewayRoute> Routes,
    GatewayRoute? Default,
    UnmatchedAction NoSni,
    UnmatchedAction NonTls,
    GatewayLimits Limits,
    string SourcePath)
{
    /// <summary>The key file that seals the terminating routes' TLS session tickets (made 0600 when missing); null:
    /// a key of each configuration only.</summary>
    public string? TicketKeyFile { get; init; }

    /// <summary>Host names (besides IP addresses and localhost) a request to <see cref="Admin"/> may name (<c>admin.hosts</c>).</summary>
    public IReadOnlyList<string> AdminHosts { get; init; } = [];
}

/// <summary>What to do with a connection the SNI cannot route: a ClientHello without SNI, or bytes that are not TLS.</summary>
public enum UnmatchedAction
{
    /// <summary>Close it (counted).</summary>
    Reject,

    /// <summary>Send it to the <c>default</c> route.</summary>
    Default,
}

public enum RouteMode
{
    /// <summary>The raw TLS bytes go to the backend untouched; the tenant keeps its keys.</summary>
    Passthrough,

    /// <summary>TLS ends here with the route's certificate; plaintext (with PROXY v2) goes to the backend.</summary>
    Terminate,
}

/// <summary>
/// One route. <see cref="Sni"/> is an exact lower-case name, or <c>*.suffix</c> (one or more labels before the suffix),
/// or null for the default route. <see cref="Name"/> labels metrics and logs; it comes from the config, never from a peer.
/// <see cref="Backends"/> holds one backend, or the nodes of a cluster that serve the route (see <c>BackendPool</c>).
/// </summary>
public sealed record GatewayRoute(
    string Name,
    string? Sni,
    RouteMode Mode,
    IReadOnlyList<IPEndPoint> Backends,
    bool ProxyProtocol,
    TerminateSettings? Terminate,
    string Path);

/// <summary>TLS termination: the route's certificate and key (PEM files), and an optional CA for client certificates.</summary>
public sealed record TerminateSettings(string Certificate, string Key, string? ClientCa, bool ClientCertificateRequired)
{
    /// <summary>A CRL (PEM or DER, several in one PEM file) of client certificates the route refuses as unverified.</summary>
    public string? ClientCrl { get; init; }
}

/// <summary>Abuse limits; see docs/gateway.md. All counts are per gateway process.</summary>
public sealed record GatewayLimits(
    TimeSpan PrereadTimeout,
    TimeSpan HandshakeTimeout,
    TimeSpan ConnectTimeout,
    int MaxConnections,
    int PerIpConnections,
    int PerIpRate,
    int PerIpBurst,
    int BanAfterFailures,
    TimeSpan FailureWindow,
    TimeSpan BanTime)
{
    /// <summary>A relay on which no byte moved either way for this long is closed; zero keeps relays for ever.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(GatewayConfigLoader.DefaultIdleTimeout);

    public static GatewayLimits Defaults { get; } = new(
        TimeSpan.FromSeconds(GatewayConfigLoader.DefaultPrereadTimeout),
        TimeSpan.FromSeconds(GatewayConfigLoader.DefaultHandshakeTimeout),
        TimeSpan.FromSeconds(GatewayConfigLoader.DefaultConnectTimeout),
        GatewayConfigLoader.DefaultMaxConnections,
        GatewayConfigLoader.DefaultPerIpConnections,
        GatewayConfigLoader.DefaultPerIpRate,
        GatewayConfigLoader.DefaultPerIpBurst,
        GatewayConfigLoader.DefaultBanAfter,
        TimeSpan.FromSeconds(GatewayConfigLoader.DefaultFailureWindow),
        TimeSpan.FromSeconds(GatewayConfigLoader.DefaultBanTime));
}

/// <summary>Either a configuration or every error found in it.</summary>
public sealed record GatewayConfigLoadResult(GatewayConfig? Config, IReadOnlyList<ConfigError> Errors)
{
    public bool Ok => Config is not null && Errors.Count == 0;
}
