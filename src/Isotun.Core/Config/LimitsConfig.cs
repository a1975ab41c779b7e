namespace Isotun.Config;

/// <summary>
/// Connection limits: how long a TLS handshake and the authentication exchange may take, how many sessions may exist,
/// and how many connections may be open at once, in all and per source (an IPv4 address or an IPv6 /64).
/// </summary>
public sealed record LimitsConfig(TimeSpan HandshakeTimeout, TimeSpan AuthTimeout, int MaxSessions,
    int MaxConnections = LimitsConfig.DefaultMaxConnections, int PerSourceConnections = LimitsConfig.DefaultPerSourceConnections)
{
    public const int DefaultMaxConnections = 16384;
    public const int DefaultPerSourceConnections = 256;
}
