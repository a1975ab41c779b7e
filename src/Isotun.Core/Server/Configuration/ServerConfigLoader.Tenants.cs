using System.Net;
using System.Net.Sockets;
using Isotun.Config;
using Isotun.Protocol.Addressing;

namespace Isotun.Server.Configuration;

/// <summary>The isolation half of a tenant: namespace, IPv6 pool, who may log in, limits and the uplink.</summary>
public static partial class ServerConfigLoader
{
    internal const string NamespacePrefix = "isotun-";
    private static readonly string[] UplinkKeys = ["veth", "link"];
    private static readonly string[] VethKeys = ["peer-namespace", "name", "peer-name", "address", "peer-address", "proxy-arp"];
    private static readonly string[] LinkKeys = ["name", "address", "gateway", "proxy-arp"];

    private static TenantConfig ReadTenantIsolation(ConfigWalker walker, Dictionary<string, YamlTreeNode> keys, string path, TenantConfig tenant)
    {
        var nsPath = $"{path}.namespace";
        var ns = walker.Text(keys.GetValueOrDefault("namespace"), nsPath);
        if (ns is null)
        {
            ns = tenant.Name.Length > 0 ? NamespacePrefix + tenant.Name : string.Empty;
        }
        else if (ns != TenantConfig.HostNamespace && !IsValidNamespace(ns))
        {
            walker.Error(nsPath, "must be 1-64 characters of A-Z a-z 0-9 _ . - (or 'host' for the server's own namespace)");
            ns = string.Empty;
        }

        IpNetwork? pool6 = null;
        var pool6Path = $"{path}.pool6";
        if (walker.Text(keys.GetValueOrDefault("pool6"), pool6Path) is { } text6)
        {
            switch (CidrParser.TryParse(text6, out var net6))
            {
                case CidrParseOutcome.Ok when net6.BaseAddress.AddressFamily != AddressFamily.InterNetworkV6:
                    walker.Error(pool6Path, "must be an IPv6 CIDR such as fd00:10::/64");
                    break;
                case CidrParseOutcome.Ok when net6.PrefixLength is < 48 or > 120:
                    walker.Error(pool6Path, "prefix length must be between /48 and /120");
                    break;
                case CidrParseOutcome.Ok:
                    pool6 = net6.ToIpNetwork();
                    break;
                case CidrParseOutcome.HostBitsSet:
                    walker.Error(pool6Path, $"host bits are set; did you mean {net6}?");
                    break;
                default:
                    walker.Error(pool6Path, "must be an IPv6 CIDR such as fd00:10::/64");
                    break;
            }
        }

        var caPath = $"{path}.client-ca";
        var clientCa = walker.FilePath(keys.GetValueOrDefault("client-ca"), caPath);
        if (clientCa is not null)
        {
            PemFileCheck.Bundle(walker, clientCa, caPath);
        }

        var crlPath = $"{path}.client-crl";
        var clientCrl = walker.FilePath(keys.GetValueOrDefault("client-crl"), crlPath);
        if (clientCrl is not null)
        {
            try
            {
                Pki.RevocationList.Load(clientCrl);
            }
            catch (Pki.PkiException e)
            {
                walker.Error(crlPath, e.Message);
            }
        }

        var ous = new List<string>();
        foreach (var (ou, itemPath) in walker.TextList(keys.GetValueOrDefault("allowed-ous"), $"{path}.allowed-ous"))
        {
            if (ou.Length is 0 or > 64) walker.Error(itemPath, "must be 1-64 characters");
            else ous.Add(ou);
        }

        var names = new List<string>();
        foreach (var (sni, itemPath) in walker.TextList(keys.GetValueOrDefault("server-names"), $"{path}.server-names"))
        {
            if (Uri.CheckHostName(sni) != UriHostNameType.Dns) walker.Error(itemPath, "must be a DNS name");
            else names.Add(sni.ToLowerInvariant());
        }

        var maxSessions = walker.Integer(keys.GetValueOrDefault("max-sessions"), $"{path}.max-sessions", TenantConfig.DefaultMaxSessions, 1, 100_000);
        var perUser = walker.Integer(keys.GetValueOrDefault("max-sessions-per-user"), $"{path}.max-sessions-per-user", TenantConfig.DefaultMaxSessionsPerUser, 1, 100_000);
        var overUser = UserLimitAction.ReplaceOldestIdle;
        if (walker.Text(keys.GetValueOrDefault("over-user-limit"), $"{path}.over-user-limit") is { } action)
        {
            if (action == "refuse") overUser = UserLimitAction.Refuse;
            else if (action != "replace-oldest-idle") walker.Error($"{path}.over-user-limit", "must be replace-oldest-idle or refuse");
        }
        var rate = walker.Integer(keys.GetValueOrDefault("rate-limit"), $"{path}.rate-limit", 0, 0, 2_000_000_000);
        if (rate is > 0 and < 8192) walker.Error($"{path}.rate-limit", "must be 0 (none) or at least 8192 bytes/s");
        var c2c = walker.Boolean(keys.GetValueOrDefault("client-to-client"), $"{path}.client-to-client", false);
        var leaseSeconds = walker.Integer(keys.GetValueOrDefault("lease-lifetime"), $"{path}.lease-lifetime", 0, 0, 365 * 86400);
        var uplink = ReadUplink(walker, keys.GetValueOrDefault("uplink"), $"{path}.uplink", ns);
        var offload = walker.Boolean(keys.GetValueOrDefault("offload"), $"{path}.offload", true);
        var queues = walker.Integer(keys.GetValueOrDefault("queues"), $"{path}.queues", TenantConfig.DefaultQueues, 1, Protocol.Cstp.IsotunExtensions.MaxQueues);

        return tenant with
        {
            Namespace = ns,
            Pool6 = pool6,
            ClientCa = clientCa,
            ClientCrl = clientCrl,
            AllowedOus = ous,
            ServerNames = names,
            MaxSessions = maxSessions,
            MaxSessionsPerUser = perUser,
            OverUserLimit = overUser,
            RateLimit = rate,
            ClientToClient = c2c,
            LeaseLifetime = leaseSeconds == 0 ? null : TimeSpan.FromSeconds(leaseSeconds),
            Uplink = uplink,
            Offload = offload,
            Queues = queues,
        };
    }

    /// <summary>What the tenants read so far claimed, for the isolation checks between tenants.</summary>
    private sealed class TenantClaims
    {
        public List<(IPNetwork Pool6, int Index, string Namespace)> Pools6 { get; } = [];
        public Dictionary<string, int> ServerNames { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, int> Namespaces { get; } = new(StringComparer.Ordinal);
        public List<(string Path, int Index, string PeerNamespace)> Veths { get; } = [];
    }

    /// <summary>Checks one tenant against those before it: IPv6 pools within a namespace, and server names.</summary>
    private static void ClaimIsolation(ConfigWalker walker, string path, int index, TenantConfig tenant, TenantClaims claims)
    {
        if (tenant.Pool6?.ToIPNetwork() is { } pool6)
        {
            foreach (var (other, i, ns) in claims.Pools6)
            {
                if (ns == tenant.Namespace && CidrParser.Overlaps(pool6, other))
                {
                    walker.Error($"{path}.pool6", $"overlaps tenants[{i}].pool6 ({other}) in the same namespace");
                }
            }

            claims.Pools6.Add((pool6, index, tenant.Namespace));
        }

        // A server name admits one tenant only; a second claim could never be used, and would be a surprise.
        foreach (var name in tenant.ServerNames)
        {
            if (claims.ServerNames.TryGetValue(name, out var first) && first != index)
            {
                walker.Error($"{path}.server-names", $"'{name}' is also a server name of tenants[{first}]");
            }
            else
            {
                claims.ServerNames[name] = index;
            }
        }

        if (tenant.Namespace.Length > 0 && !tenant.InHostNamespace) claims.Namespaces.TryAdd(tenant.Namespace, index);
        if (tenant.Uplink.Kind == "veth" && tenant.Uplink.PeerNamespace is { } peer) claims.Veths.Add(($"{path}.uplink.veth.peer-namespace", index, peer));
    }

    /// <summary>
    /// A veth into a tenant's own namespace would be a path between tenants: exactly what namespaces prevent. So would
    /// two tenants' veths into one namespace: the server routes each tenant's pool and sites there, so their routes
    /// would meet in one table (and with overlapping pools, one tenant's would replace the other's, sending its
    /// replies to the other tenant's client).
    /// </summary>
    private static void CheckUplinksAcrossTenants(ConfigWalker walker, TenantClaims claims)
    {
        var peers = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (path, index, peer) in claims.Veths)
        {
            if (claims.Namespaces.TryGetValue(peer, out var owner))
                walker.Error(path, owner == index
                    ? "is this tenant's own namespace"
                    : $"is the namespace of tenants[{owner}]: tenants must not be joined");
            else if (!peers.TryAdd(peer, index))
                walker.Error(path, $"is also the peer namespace of tenants[{peers[peer]}]: each tenant's veth needs a namespace of its own, or the two tenants' routes meet there");
        }
    }

    private static UplinkConfig ReadUplink(ConfigWalker walker, YamlTreeNode? node, string path, string ns)
    {
        if (ConfigWalker.IsAbsent(node)) return UplinkConfig.None;
        if (node is YamlTreeScalar { Value: var v } && v.Trim() == "none") return UplinkConfig.None;
        var keys = walker.Keys(walker.Mapping(node, path), path, UplinkKeys);
        if (keys.Count != 1)
        {
            if (keys.Count > 1) walker.Error(path, "give exactly one of 'veth' or 'link' (or 'none')");
            return UplinkConfig.None;
        }
        if (ns == TenantConfig.HostNamespace)
        {
            walker.Error(path, "a tenant in the host namespace has no uplink: the host's own routing applies");
            return UplinkConfig.None;
        }

        if (keys.TryGetValue("veth", out var vethNode))
        {
            var vp = $"{path}.veth";
            var k = walker.Keys(walker.Mapping(vethNode, vp), vp, VethKeys);
            var peerNs = walker.Text(k.GetValueOrDefault("peer-namespace"), $"{vp}.peer-namespace");
            if (peerNs is null) walker.Error($"{vp}.peer-namespace", "required: the existing namespace the veth leads into");
            else if (!IsValidNamespace(peerNs)) walker.Error($"{vp}.peer-namespace", "not a valid namespace name");
            var name = Device(walker, k.GetValueOrDefault("name"), $"{vp}.name") ?? "uplink0";
            var peerName = Device(walker, k.GetValueOrDefault("peer-name"), $"{vp}.peer-name") ?? ("u-" + ns.Replace(NamespacePrefix, ""))[..Math.Min(15, 2 + ns.Replace(NamespacePrefix, "").Length)];
            var address = InterfaceCidr(walker, k.GetValueOrDefault("address"), $"{vp}.address", required: true);
            var peerAddress = InterfaceCidr(walker, k.GetValueOrDefault("peer-address"), $"{vp}.peer-address", required: true);
            var gateway = peerAddress is null ? null : IPAddress.Parse(peerAddress.Split('/')[0]);
            return new UplinkConfig("veth", peerNs, name, peerName, address, peerAddress, gateway)
            {
                ProxyArp = walker.Boolean(k.GetValueOrDefault("proxy-arp"), $"{vp}.proxy-arp", false),
            };
        }

        var lp = $"{path}.link";
        var lk = walker.Keys(walker.Mapping(keys["link"], lp), lp, LinkKeys);
        var link = Device(walker, lk.GetValueOrDefault("name"), $"{lp}.name");
        if (link is null && ConfigWalker.IsAbsent(lk.GetValueOrDefault("name"))) walker.Error($"{lp}.name", "required: the existing link to move into the tenant namespace");
        var linkAddress = InterfaceCidr(walker, lk.GetValueOrDefault("address"), $"{lp}.address", required: false);
        IPAddress? linkGateway = null;
        if (walker.Text(lk.GetValueOrDefault("gateway"), $"{lp}.gateway") is { } gw)
        {
            if (IpText.TryParse(gw, out var g)) linkGateway = g;
            else walker.Error($"{lp}.gateway", "not an IP address");
        }
        return new UplinkConfig("link", null, link, null, linkAddress, null, linkGateway)
        {
            ProxyArp = walker.Boolean(lk.GetValueOrDefault("proxy-arp"), $"{lp}.proxy-arp", false),
        };
    }

    private static string? Device(ConfigWalker walker, YamlTreeNode? node, string path)
    {
        var text = walker.Text(node, path);
        if (text is null) return null;
        if (!IsValidDevice(text))
        {
            walker.Error(path, $"must be 1-{MaxDeviceLength} characters of A-Z a-z 0-9 _ . -");
            return null;
        }
        return text;
    }

    /// <summary>An interface address with its prefix, e.g. 198.18.3.1/24 (host bits expected).</summary>
    private static string? InterfaceCidr(ConfigWalker walker, YamlTreeNode? node, string path, bool required)
    {
        var text = walker.Text(node, path);
        if (text is null)
        {
            if (required) walker.Error(path, "required, e.g. 198.18.3.1/24");
            return null;
        }
        var parts = text.Split('/');
        if (parts.Length == 2 && IpText.TryParse(parts[0], out var a) && int.TryParse(parts[1], out int prefix)
            && prefix >= 1 && prefix <= (a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128))
            return $"{a}/{prefix}";
        walker.Error(path, "must be an address with a prefix length, e.g. 198.18.3.1/24");
        return null;
    }


    private static bool IsValidNamespace(string ns) =>
        ns.Length is > 0 and <= 64 && ns is not ("." or "..") && ns.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');
}
