namespace Isotun.Server.Configuration;

/// <summary>
/// Connection limits: how long a TLS handshake and the authentication exchange may take, how many sessions may exist,
/// and how many connections may be open at once, in all and per source (an IPv4 address or an IPv6 /64).
/// </summary>
public sealed record LimitsConfig(TimeSpan HandshakeTimeout, TimeSpan AuthTimeout, int MaxSessions,
    int MaxConnections = LimitsConfig.DefaultMaxConnections, int PerSourceConnections = LimitsConfig.DefaultPerSourceConnections)
{
    public const int DefaultMaxConnections = 16384;
    public const int DefaultPerSourceConnections = 256;
    public const int DefaultRequestTimeoutSeconds = 10;
    public const int DefaultMinBodyRate = 1024;
    public const int DefaultWriteTimeoutSeconds = 10;

    /// <summary>From a request's first byte to the end of its head (as Kestrel's RequestHeadersTimeout).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(DefaultRequestTimeoutSeconds);

    /// <summary>A request body must arrive at this many bytes per second at least, after a grace of <see cref="BodyGrace"/>.</summary>
    public int MinBodyRate { get; init; } = DefaultMinBodyRate;

    public static readonly TimeSpan BodyGrace = TimeSpan.FromSeconds(5);

    /// <summary>Each reply of the HTTP phase must be taken by the peer within this time.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(DefaultWriteTimeoutSeconds);

    /// <summary>Failed logins for one user name within <see cref="LoginFailureWindow"/> that ban that user for a while; 0 turns it off.</summary>
    public int LoginBanAfter { get; init; } = 10;

    /// <summary>Failed logins from one source (an IPv4 address or IPv6 /64) that ban it; higher, since many users may share one NAT.</summary>
    public int LoginSourceBanAfter { get; init; } = 50;

    public TimeSpan LoginFailureWindow { get; init; } = TimeSpan.FromMinutes(5);

    public TimeSpan LoginBanTime { get; init; } = TimeSpan.FromMinutes(5);

    public const int DefaultSessionMemoryKib = 4096;

    /// <summary>
    /// The bytes of frame buffers one session may hold queued for its peer, across its connections (a peer that stops
    /// reading pins no more); frames over it are dropped and counted as <c>over-budget</c>.
    /// </summary>
    public long SessionMemory { get; init; } = DefaultSessionMemoryKib * 1024L;

    /// <summary>On stop: how long open connections get to finish after the listeners close and the tunnels are told to go.</summary>
    public TimeSpan DrainTime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a body of <paramref name="length"/> bytes may take at <see cref="MinBodyRate"/>.</summary>
    public TimeSpan BodyTimeout(long length) => BodyGrace + TimeSpan.FromSeconds((double)length / MinBodyRate);
}
