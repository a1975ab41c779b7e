using System.Net;
using System.Net.Sockets;
using Isotun.Config;
using Isotun.Pki;
using Isotun.Protocol.Addressing;
using Isotun.Security;

namespace Isotun.Server.Configuration;

/// <summary>A tenant's sites (networks behind users' clients) and its east-west policy between them.</summary>
public static partial class ServerConfigLoader
{
    private static readonly string[] SiteKeys = ["name", "user", "subnets"];

    private static TenantConfig ReadSites(ConfigWalker walker, Dictionary<string, YamlTreeNode> keys, string path, TenantConfig tenant)
    {
        var sitesPath = $"{path}.sites";
        var sequence = walker.Sequence(keys.GetValueOrDefault("sites"), sitesPath);
        var sites = new List<SiteConfig>();
        // Every subnet seen so far in this tenant, with where it was given: one address has one site.
        var claimed = new List<(IPNetwork Net, string Path)>();
        if (tenant.Pool.Network is not null) claimed.Add((tenant.Pool.ToIPNetwork(), $"{path}.pool"));
        if (tenant.Pool6 is { } pool6) claimed.Add((pool6.ToIPNetwork(), $"{path}.pool6"));
        // The uplink's own networks too: a site's route over one would replace the link's connected route, and send
        // the traffic for the upstream router to a client.
        var uplinkPath = $"{path}.uplink.{tenant.Uplink.Kind}";
        foreach (var (cidr, key) in new[] { (tenant.Uplink.Address, "address"), (tenant.Uplink.PeerAddress, "peer-address") })
            if (cidr is not null && CidrParser.TryParse(cidr, out var link) is CidrParseOutcome.Ok or CidrParseOutcome.HostBitsSet) claimed.Add((link, $"{uplinkPath}.{key}"));
        if (tenant.Uplink.Gateway is { } gateway) claimed.Add((new IPNetwork(gateway, gateway.AddressFamily == AddressFamily.InterNetwork ? 32 : 128), $"{uplinkPath}.gateway"));
        for (int i = 0; sequence is not null && i < sequence.Items.Count; i++)
        {
            var itemPath = ConfigWalker.Item(sitesPath, i);
            var site = walker.Keys(walker.Mapping(sequence.Items[i], itemPath), itemPath, SiteKeys);
            var name = walker.Text(site.GetValueOrDefault("name"), $"{itemPath}.name");
            if (name is null) walker.Error($"{itemPath}.name", "required");
            else if (!PkiNames.IsValidTenant(name)) walker.Error($"{itemPath}.name", "must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit");
            else if (name == TenantConfig.ClientsName) walker.Error($"{itemPath}.name", $"'{TenantConfig.ClientsName}' stands for the tenant's clients in east-west; choose another name");
            else if (sites.Any(s => s.Name == name)) walker.Error($"{itemPath}.name", $"duplicate site name '{name}'");
            var user = walker.Text(site.GetValueOrDefault("user"), $"{itemPath}.user");
            if (user is null) walker.Error($"{itemPath}.user", "required: the user whose session carries the site");
            else if (!PasswordFile.IsValidUserName(user)) walker.Error($"{itemPath}.user", "not a valid user name");
            else if (sites.FirstOrDefault(s => s.User == user) is { } other) walker.Error($"{itemPath}.user", $"'{user}' already carries site '{other.Name}'; give that site all of the user's subnets");
            var subnets = new List<IpNetwork>();
            var subnetsPath = $"{itemPath}.subnets";
            foreach (var (text, subnetPath) in walker.TextList(site.GetValueOrDefault("subnets"), subnetsPath))
            {
                if (ReadSubnet(walker, text, subnetPath) is not { } net) continue;
                if (tenant.Routes.FirstOrDefault(r => CidrParser.Overlaps(net, r.ToIPNetwork())) is { Network: not null } route)
                    walker.Error(subnetPath, $"{net} overlaps {route} ({path}.routes): a route leads to the tenant's own networks, a site to a client");
                else if (claimed.FirstOrDefault(c => CidrParser.Overlaps(net, c.Net)) is { Path: not null } clash)
                    walker.Error(subnetPath, $"{net} overlaps {clash.Net} ({clash.Path}): an address belongs to one site or client");
                else
                {
                    claimed.Add((net, subnetPath));
                    subnets.Add(net.ToIpNetwork());
                }
            }
            if (subnets.Count == 0 && ConfigWalker.IsAbsent(site.GetValueOrDefault("subnets"))) walker.Error(subnetsPath, "required: the networks behind the user's client, e.g. [192.168.10.0/24]");
            if (name is not null && user is not null) sites.Add(new SiteConfig(name, user, subnets));
        }
        return tenant with { Sites = sites, EastWest = ReadEastWest(walker, keys.GetValueOrDefault("east-west"), $"{path}.east-west", sites) };
    }

    private static IPNetwork? ReadSubnet(ConfigWalker walker, string text, string path)
    {
        switch (CidrParser.TryParse(text, out var net))
        {
            case CidrParseOutcome.Ok when net.PrefixLength < (net.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 8 : 16):
                walker.Error(path, "too wide: at least /8 for IPv4 and /16 for IPv6 (a site holds its own networks, not the default route)");
                return null;
            case CidrParseOutcome.Ok:
                return net;
            case CidrParseOutcome.HostBitsSet:
                walker.Error(path, $"host bits are set; did you mean {net}?");
                return null;
            default:
                walker.Error(path, "must be a CIDR such as 192.168.10.0/24 or fd00:10::/64");
                return null;
        }
    }

    /// <summary>
    /// <c>all</c> (the default: null), <c>none</c> (an empty list), or a list of <c>a &lt;-&gt; b</c> links between sites
    /// or <c>clients</c>.
    /// </summary>
    private static IReadOnlyList<SiteLink>? ReadEastWest(ConfigWalker walker, YamlTreeNode? node, string path, List<SiteConfig> sites)
    {
        if (ConfigWalker.IsAbsent(node)) return null;
        if (node is YamlTreeScalar { Value: var scalar })
        {
            switch (scalar.Trim())
            {
                case "all": return null;
                case "none": return [];
                default:
                    walker.Error(path, "must be all, none, or a list of links such as \"branch-a <-> branch-b\"");
                    return null;
            }
        }
        var links = new List<SiteLink>();
        foreach (var (text, itemPath) in walker.TextList(node, path))
        {
            var ends = text.Split("<->", StringSplitOptions.TrimEntries);
            if (ends.Length != 2 || ends[0].Length == 0 || ends[1].Length == 0)
            {
                walker.Error(itemPath, "must be a link such as \"branch-a <-> branch-b\" (a site's name, or clients)");
                continue;
            }
            bool ok = true;
            foreach (var end in ends)
            {
                if (end != TenantConfig.ClientsName && sites.All(s => s.Name != end))
                {
                    walker.Error(itemPath, $"'{end}' is not a site of this tenant (nor clients)");
                    ok = false;
                }
            }
            if (ok && ends[0] == ends[1]) walker.Error(itemPath, "links a site to itself");
            else if (ok) links.Add(new SiteLink(ends[0], ends[1]));
        }
        return links;
    }
}
