using System.Net;
using Isotun.Linux;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Cstp;
using Isotun.Tun;

namespace Isotun.Client;

/// <summary>
/// The client's TUN in the kernel: opened in the client's own namespace, given the leased addresses and MTU, and
/// the routes the server pushed (split-include, or everything), with the server itself pinned to the underlay.
/// </summary>
public sealed class KernelClientNetwork(ClientOptions options) : IClientNetwork
{
    public ITunQueue[] Open(TunnelParameters p, int queues, IPAddress server)
    {
        // Offloads whenever allowed: super-packets go whole to a server that negotiated GSO and are split for
        // one that did not; packets from the server are merged before the TUN write either way.
        var tuns = TunDevice.OpenQueues(options.TunName, options.Offload, queues);
        try
        {
            Configure(tuns[0], p, server);
            foreach (var q in tuns) q.Mtu = p.Mtu;
            return tuns;
        }
        catch
        {
            foreach (var q in tuns) q.Dispose();
            Close(); // what was made on the underlay before the failure
            throw;
        }
    }

    /// <summary>
    /// A site gateway routes between the tunnel and its LAN: forwarding on in this namespace (the files under
    /// /proc/sys/net are the calling process's namespace's), and no NAT, so the server sees the site's own sources.
    /// </summary>
    private static void EnableForwarding()
    {
        try
        {
            File.WriteAllText("/proc/sys/net/ipv4/ip_forward", "1");
            if (File.Exists("/proc/sys/net/ipv6/conf/all/forwarding")) File.WriteAllText("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TunException($"--site-gateway: cannot turn on IP forwarding: {e.Message}");
        }
    }

    private void Configure(TunDevice tun, TunnelParameters p, IPAddress server)
    {
        var dev = tun.Name;
        _name = dev;
        if (tun.Offload) IpCommand.Run("link", "set", "dev", dev, "gso_max_size", TunDevice.GsoMaxSize.ToString());
        // No IPv6 link-local chatter: the tunnel carries only the leased address.
        IpCommand.TryRun("link", "set", "dev", dev, "addrgenmode", "none");
        IpCommand.Run("link", "set", "dev", dev, "mtu", p.Mtu.ToString(), "up");
        IpCommand.Run("addr", "replace", $"{p.Address}/32", "dev", dev);
        if (p.Address6 is not null) IpCommand.Run("-6", "addr", "replace", $"{p.Address6}/128", "dev", dev, "nodad");
        if (options.SiteGateway) EnableForwarding();
        if (!options.ConfigureRoutes) return;
        var family = Family(server);
        string host = $"{server}/{(family == "-6" ? 128 : 32)}";
        // Kept on the underlay, each the way it went before the tunnel (read before any route into the tunnel exists,
        // set after them): the server itself, whatever the tunnel's routes cover (a pushed 10.0.0.0/8 around a server
        // at 10.1.2.3, or everything, or its own address), and the networks the server excludes from the tunnel.
        // A route the host had already for one of them stays theirs (and stays after the client); one made here goes
        // with the client.
        var underlay = new List<(string Family, string Network, List<string> Route, bool Existed)>();
        foreach (var (network, to) in p.SplitExclude.Select(x => (x.ToString(), x.Network)).Prepend((host, server)))
        {
            var f = Family(to);
            bool isServer = network == host;
            bool existed = IpCommand.ExactRoutes(null, f, network).Count > 0;
            if (existed && !isServer) continue; // the host's own route for an excluded network: left as it is
            var (code, via, error) = IpCommand.Exec("ip", [f, "route", "get", to.ToString()], check: false);
            if (code != 0)
            {
                if (isServer) throw new TunException($"no route to the server {server} outside the tunnel: {error.Trim()}");
                continue; // no way there outside the tunnel: nothing to keep
            }
            var words = via.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var route = new List<string> { f, "route", "replace", network };
            for (int i = 0; i + 1 < words.Length; i++)
                if (words[i] is "via" or "dev") route.AddRange([words[i], words[i + 1]]);
            underlay.Add((f, network, route, existed));
        }
        foreach (var route in Routes(p))
        {
            var f = Family(route.Network);
            _replaced.AddRange(IpCommand.ExactRoutes(null, f, route.ToString())
                .Where(r => r.Type == "unicast" && r.Dev is not null && r.Dev != dev).Select(r => r.ReplaceArgs(f, route.ToString())));
            IpCommand.Run(f, "route", "replace", route.ToString(), "dev", dev);
        }
        foreach (var (f, network, route, existed) in underlay)
        {
            IpCommand.Run([.. route]);
            if (!existed) _made.Add((f, network));
        }
    }

    public void SetMtu(int mtu)
    {
        if (_name is { } dev) IpCommand.Run("link", "set", "dev", dev, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private string? _name; // the TUN's, once open

    // The underlay routes made by Open (to the server, and the excluded networks), taken away by Close.
    private readonly List<(string Family, string Network)> _made = [];

    // The host's routes for the very prefixes the tunnel's routes take (a LAN's, a container bridge's): a `replace`
    // of the same prefix and metric takes the host's place, so Close puts them back.
    private readonly List<string[]> _replaced = [];

    /// <summary>
    /// Takes away the underlay routes <see cref="Open"/> made and puts back the host's routes the tunnel's replaced
    /// (the TUN's own routes go with the TUN, which is closed first).
    /// </summary>
    public void Close()
    {
        foreach (var (family, network) in _made) IpCommand.TryRun(family, "route", "del", network);
        _made.Clear();
        foreach (var route in _replaced) IpCommand.TryRun(route);
        _replaced.Clear();
    }

    /// <summary>
    /// The routes into the tunnel: its own network (gateway and, where allowed, other clients), then the split-include
    /// routes, decided per address family: a family with none gets its whole space (IPv6 only when the tunnel has an
    /// IPv6 address), as vpnc-script does. A whole space goes in as its two halves, more specific than the default
    /// route, which stays as it was: `replace` of a /0 would overwrite it, and the exit would not restore it.
    /// </summary>
    public static IReadOnlyList<IpNetwork> Routes(TunnelParameters p)
    {
        var routes = new List<IpNetwork>();
        if (p.Netmask is not null && ConnectReply.TryParseRoute($"{p.Address}/{p.Netmask}", out var own) && own.PrefixLength < 32) routes.Add(own);
        var v4 = p.SplitInclude.Where(r => r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).ToList();
        var v6 = p.SplitInclude.Where(r => r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6).ToList();
        routes.AddRange(v4.Count > 0 ? v4 : [new IpNetwork(IPAddress.Any, 0)]);
        if (v6.Count > 0) routes.AddRange(v6);
        else if (p.Address6 is not null) routes.Add(new IpNetwork(IPAddress.IPv6Any, 0));
        return [.. routes.SelectMany(Halves).Distinct()];
    }

    private static string Family(IPAddress a) => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4";

    /// <summary>A /0 as its two /1 halves; any other network as it is.</summary>
    private static IEnumerable<IpNetwork> Halves(IpNetwork r)
    {
        if (r.PrefixLength > 0)
        {
            yield return r;
            yield break;
        }
        var high = r.Network.GetAddressBytes();
        high[0] = 0x80;
        yield return new IpNetwork(r.Network, 1);
        yield return new IpNetwork(new IPAddress(high), 1);
    }
}
