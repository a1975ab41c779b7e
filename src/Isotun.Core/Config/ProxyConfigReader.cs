using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.Config;

/// <summary>Reads the server's optional <c>proxy</c> section (the listener behind an edge gateway); see docs/configuration.md.</summary>
internal static class ProxyConfigReader
{
    internal const int DefaultHeaderTimeout = 5;
    private static readonly string[] Keys = ["listen", "trusted-gateways", "header-timeout", "tls"];

    /// <summary>Null when the section is absent (no proxy listener). <paramref name="mainListen"/> may not be reused.</summary>
    public static ProxyConfig? Read(ConfigWalker walker, YamlTreeNode? node, IPEndPoint mainListen)
    {
        var mapping = walker.Mapping(node, "proxy");
        if (mapping is null) return null;
        var keys = walker.Keys(mapping, "proxy", Keys);

        IPEndPoint? listen = null;
        var listenText = walker.Text(keys.GetValueOrDefault("listen"), "proxy.listen");
        if (listenText is null)
        {
            if (ConfigWalker.IsAbsent(keys.GetValueOrDefault("listen"))) walker.Error("proxy.listen", "required");
        }
        else if (!EndpointText.TryParse(listenText, out var endpoint))
        {
            walker.Error("proxy.listen", "must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535");
        }
        else if (endpoint.Port == mainListen.Port && (endpoint.Address.Equals(mainListen.Address) || endpoint.Address.Equals(IPAddress.Any) || mainListen.Address.Equals(IPAddress.Any)))
        {
            walker.Error("proxy.listen", $"collides with listen ({mainListen}); the PROXY listener needs its own port");
        }
        else
        {
            listen = endpoint;
        }

        var trusted = new List<IPNetwork>();
        foreach (var (text, itemPath) in walker.TextList(keys.GetValueOrDefault("trusted-gateways"), "proxy.trusted-gateways"))
        {
            if (!text.Contains('/') && IpText.TryParse(text, out var single))
            {
                trusted.Add(new IPNetwork(single, single.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
                continue;
            }

            switch (CidrParser.TryParse(text, out var network))
            {
                case CidrParseOutcome.Ok:
                    trusted.Add(network);
                    break;
                case CidrParseOutcome.HostBitsSet:
                    walker.Error(itemPath, $"host bits are set; did you mean {network}?");
                    break;
                default:
                    walker.Error(itemPath, "must be an IP address or a CIDR such as 198.18.23.1/32");
                    break;
            }
        }

        if (trusted.Count == 0 && !walker.Errors.Any(e => e.Path.StartsWith("proxy.trusted-gateways", StringComparison.Ordinal)))
            walker.Error("proxy.trusted-gateways", "at least one gateway address is required (a PROXY header from anyone else would let them claim any identity)");

        int timeout = walker.Integer(keys.GetValueOrDefault("header-timeout"), "proxy.header-timeout", DefaultHeaderTimeout, 1, 60);
        bool tls = walker.Boolean(keys.GetValueOrDefault("tls"), "proxy.tls", false);
        return listen is null ? null : new ProxyConfig(listen, trusted, TimeSpan.FromSeconds(timeout)) { Tls = tls };
    }
}
