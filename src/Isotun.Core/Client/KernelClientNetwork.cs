using System.Net;
using Isotun.Linux;
using Isotun.Protocol.Cstp;
using Isotun.Tun;

namespace Isotun.Client;

/// <summary>
/// The client's TUN in the kernel: opened in the client's own namespace, given the leased addresses and MTU, and
/// the routes the server pushed (split-include, or everything with the server itself pinned to the underlay).
/// </summary>
public sealed class KernelClientNetwork(ClientOptions options) : IClientNetwork
{
    public ITunQueue[] Open(TunnelParameters p, int queues)
    {
        // Offloads whenever allowed: super-packets go whole to a server that negotiated GSO and are split for
        // one that did not; packets from the server are merged before the TUN write either way.
        var tuns = TunDevice.OpenQueues(options.TunName, options.Offload, queues);
        try
        {
            Configure(tuns[0], p);
            foreach (var q in tuns) q.Mtu = p.Mtu;
            return tuns;
        }
        catch
        {
            foreach (var q in tuns) q.Dispose();
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

    private void Configure(TunDevice tun, TunnelParameters p)
    {
        var dev = tun.Name;
        if (tun.Offload) IpCommand.Run("link", "set", "dev", dev, "gso_max_size", TunDevice.GsoMaxSize.ToString());
        // No IPv6 link-local chatter: the tunnel carries only the leased address.
        IpCommand.TryRun("link", "set", "dev", dev, "addrgenmode", "none");
        IpCommand.Run("link", "set", "dev", dev, "mtu", p.Mtu.ToString(), "up");
        IpCommand.Run("addr", "replace", $"{p.Address}/32", "dev", dev);
        if (p.Address6 is not null) IpCommand.Run("-6", "addr", "replace", $"{p.Address6}/128", "dev", dev, "nodad");
        if (options.SiteGateway) EnableForwarding();
        if (!options.ConfigureRoutes) return;
        // The tunnel's own network (gateway and, where allowed, other clients) is always reached through it.
        if (p.Netmask is not null && ConnectReply.TryParseRoute($"{p.Address}/{p.Netmask}", out var own) && own.PrefixLength < 32)
            IpCommand.Run("-4", "route", "replace", own.ToString(), "dev", dev);
        if (p.SplitInclude.Count > 0)
        {
            foreach (var r in p.SplitInclude)
                IpCommand.Run(r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4", "route", "replace", r.ToString(), "dev", dev);
            return;
        }
        // No split-include means "everything": keep the server itself reachable over the underlay, then
        // take the two halves of the address space (more specific than, and not replacing, the default route).
        var server = Dns.GetHostAddresses(options.Server.IdnHost).First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
        var via = IpCommand.Run("-4", "route", "get", server.ToString()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var pin = new List<string> { "-4", "route", "replace", $"{server}/32" };
        for (int i = 0; i + 1 < via.Length; i++)
            if (via[i] is "via" or "dev") pin.AddRange([via[i], via[i + 1]]);
        IpCommand.Run([.. pin]);
        IpCommand.Run("-4", "route", "replace", "0.0.0.0/1", "dev", dev);
        IpCommand.Run("-4", "route", "replace", "128.0.0.0/1", "dev", dev);
    }
}
