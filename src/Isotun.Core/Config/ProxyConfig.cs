using System.Net;

namespace Isotun.Config;

/// <summary>
/// The server's second listener, for connections an edge gateway terminated: plaintext that starts with a PROXY v2
/// header. Only peers inside <see cref="TrustedGateways"/> are served; everyone else is closed and counted.
/// </summary>
/// <param name="Listen">Where to listen (plaintext; never expose it beyond the gateways).</param>
/// <param name="TrustedGateways">Gateway addresses, as networks (a plain address is a /32 or /128).</param>
/// <param name="HeaderTimeout">Time allowed for the PROXY header to arrive.</param>
public sealed record ProxyConfig(IPEndPoint Listen, IReadOnlyList<IPNetwork> TrustedGateways, TimeSpan HeaderTimeout)
{
    /// <summary>True when <paramref name="address"/> belongs to a trusted gateway (IPv4-mapped IPv6 counts as IPv4).</summary>
    public bool Trusts(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        foreach (var network in TrustedGateways)
            if (network.Contains(address)) return true;
        return false;
    }
}
