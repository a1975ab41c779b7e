namespace Isotun.Client;

public sealed record ClientOptions
{
    public required Uri Server { get; init; }
    public string? User { get; init; }
    /// <summary>Read from a file or stdin by the CLI, never from argv.</summary>
    public string? Password { get; init; }
    public string? Group { get; init; }
    public string? CertificateFile { get; init; }
    public string? KeyFile { get; init; }
    /// <summary>"pin-sha256:..." or "sha256:..." as openconnect takes them.</summary>
    public string? ServerPin { get; init; }
    public string? CaFile { get; init; }
    /// <summary>A cookie obtained earlier (e.g. `--cookie-on-stdin`): skips the login.</summary>
    public string? Cookie { get; init; }
    public string TunName { get; init; } = "isotun0";
    public bool ConfigureRoutes { get; init; } = true;
    public TimeSpan ReconnectTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// At most this many seconds of silence before the client probes the server, and twice that before it gives up
    /// on the connection, whatever DPD the server asks (openconnect's <c>--force-dpd</c>); null: the server's.
    /// </summary>
    public int? ForceDpd { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public string UserAgent { get; init; } = "Open AnyConnect VPN Agent v9.01-isotun";

    /// <summary>Offer Isotun's extensions (batching, GSO) to the server; a stock server ignores the offer.</summary>
    public bool Extensions { get; init; } = true;

    /// <summary>Open the TUN with virtio-net headers and TSO (super-packets, merged writes).</summary>
    public bool Offload { get; init; } = true;

    /// <summary>
    /// TLS connections to join to the session as queues (the `queues` extension), each with its own TUN queue
    /// and threads; the server may grant fewer. 1 is a single connection, as a stock client has.
    /// </summary>
    public int Queues { get; init; } = DefaultQueues;

    /// <summary>
    /// Forward between the tunnel and the host's other networks (a site gateway): IP forwarding is turned on in the
    /// client's namespace when the tunnel comes up. No NAT: the site's hosts keep their own addresses.
    /// </summary>
    public bool SiteGateway { get; init; }

    /// <summary>One queue per core, up to 8.</summary>
    public static int DefaultQueues => Math.Clamp(Environment.ProcessorCount, 1, 8);
}
