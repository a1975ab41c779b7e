namespace Isotun.Config;

/// <summary>Connection limits: how long a TLS handshake and the authentication exchange may take, and how many sessions may exist.</summary>
public sealed record LimitsConfig(TimeSpan HandshakeTimeout, TimeSpan AuthTimeout, int MaxSessions);
