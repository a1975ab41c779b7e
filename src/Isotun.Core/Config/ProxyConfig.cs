using System.Net;

namespace Isotun.Config;

/// <summary>
/// The server's second listener, for connections that come through an edge gateway and start with a PROXY v2 header:
/// plaintext when the gateway terminated TLS, or (with <see cref="Tls"/>) the client's own TLS when the gateway passed
/// it through. Only peers inside <see cref="TrustedGateways"/> are served; everyone else is closed and counted.
/// </summary>
/// <param name="Listen">Where to listen (plaintext; never expose it beyond the gateways).</param>
/// <param name="TrustedGateways">Gateway addresses, as networks (a plain address is a /32 or /128).</param>
/// <param name="HeaderTimeout">Time allowed for the PROXY header to arrive.</param>
public sealed record ProxyConfig(IPEndPoint Listen, IReadOnlyList<IPNetwork> TrustedGateways, TimeSpan HeaderTimeout)
{
    /// <summary>
    /// After the header comes the client's TLS (a passthrough route), handshaken here as on the main listener: only the
    /// client address is taken from the header; the server name and certificate come from the TLS handshake itself.
    /// </summary>
    public bool Tls { get; init; }

    /// <summary>True when <paramref name="address"/> belongs to a trusted gateway (IPv4-mapped IPv6 counts as IPv4).</summary>
    public bool Trusts(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        foreach (var network in TrustedGateways)
            if (network.Contains(address)) return true;
        return false;
    }
}
