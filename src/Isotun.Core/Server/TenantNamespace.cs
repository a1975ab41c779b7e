using System.Net;
using Isotun.Linux;
using Isotun.Protocol.Addressing;
using Isotun.Server.Configuration;
using Isotun.Tun;

namespace Isotun.Server;

/// <summary>
/// The network namespace a tenant lives in. The server creates and owns it (isotun-&lt;tenant&gt; by default; a leftover one is taken over), puts
/// the tenant's TUN inside, wires the configured uplink, and removes it all on shutdown; a namespace that someone
/// else made is used as it is and left in place. The kernel then
/// keeps tenants apart: there is no shared routing table in which a packet could cross.
/// A server claims the namespace before it touches anything in it (<see cref="FileClaim"/> on the namespace's file in
/// /run/netns): a second server given the same tenant fails there, and leaves the running one's TUN, uplink and
/// namespace alone. Only a namespace that no live server holds counts as a leftover.
/// </summary>
public sealed class TenantNamespace(TenantConfig config) : ITenantNetwork
{
    public string? Name => config.InHostNamespace ? null : config.Namespace;

    /// <summary>The namespace's file, held open and locked while this server uses the namespace; null before that.</summary>
    private FileStream? _claim;

    /// <summary>The alias of <c>lo</c> in a namespace that isotun created: one found with it was left by an isotun that
    /// did not stop cleanly, and is removed at stop like a new one; one found without it was made by someone else, and
    /// is left in place.</summary>
    private const string Marker = "isotun";

    /// <summary>The namespace is isotun's: removed at stop.</summary>
    private bool _owned;

    /// <summary>Creates the namespace (or takes over a leftover one), opens the TUN's queues inside and configures it.</summary>
    public ITunQueue[] Setup(IPAddress gateway, int prefix, IPAddress? gateway6, int prefix6, IEnumerable<IpNetwork> pools)
    {
        var ns = Name;
        if (ns is not null)
        {
            bool created = false;
            if (!NetworkNamespace.IsMounted(ns))
            {
                if (NetworkNamespace.Exists(ns)) IpCommand.TryRun("netns", "del", ns); // a stale name, see IsMounted
                IpCommand.Run("netns", "add", ns);
                created = true;
            }
            _claim = Claim(config.Name, ns);
            if (created) IpCommand.RunIn(ns, "link", "set", "dev", "lo", "alias", Marker);
            _owned = created || IsMarked(ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
            // Routing between the tunnel and the uplink happens inside the namespace.
            Sysctl(ns, "net/ipv4/ip_forward");
            Sysctl(ns, "net/ipv6/conf/all/forwarding");
        }
        // A TUN left by a crashed run would hold the name: remove it first.
        IpCommand.TryRun(In(ns, "link", "del", "dev", config.Device));
        var queues = NetworkNamespace.Run(ns, () => TunDevice.OpenQueues(config.Device, config.Offload, config.Queues));
        var tun = queues[0];
        try
        {
            IpCommand.TryRun(In(ns, "link", "set", "dev", tun.Name, "addrgenmode", "none"));
            IpCommand.Run(In(ns, "link", "set", "dev", tun.Name, "mtu", config.Mtu.ToString(), "up"));
            foreach (var q in queues) q.Mtu = config.Mtu;
            if (tun.Offload) IpCommand.Run(In(ns, "link", "set", "dev", tun.Name, "gso_max_size", TunDevice.GsoMaxSize.ToString()));
            IpCommand.Run(In(ns, "addr", "replace", $"{gateway}/{prefix}", "dev", tun.Name));
            if (gateway6 is not null)
                IpCommand.Run(In(ns, "-6", "addr", "replace", $"{gateway6}/{prefix6}", "dev", tun.Name, "nodad"));
            if (ns is not null) SetupUplink(ns, pools);
            return queues;
        }
        catch
        {
            foreach (var q in queues) q.Dispose();
            throw;
        }
    }

    private void SetupUplink(string ns, IEnumerable<IpNetwork> pools)
    {
        var u = config.Uplink;
        switch (u.Kind)
        {
            case "veth":
                if (!NetworkNamespace.Exists(u.PeerNamespace!))
                    throw new InvalidOperationException($"tenant {config.Name}: uplink peer namespace '{u.PeerNamespace}' does not exist");
                // A leftover pair goes with its end in the namespace; a link of that name in the peer's namespace is
                // someone else's (another server's uplink, say) and is not removed: the add below then fails.
                IpCommand.TryRun("-n", ns, "link", "del", "dev", u.Name!);
                IpCommand.Run("-n", ns, "link", "add", u.Name!, "type", "veth", "peer", "name", u.PeerName!, "netns", u.PeerNamespace!);
                IpCommand.Run("-n", ns, "addr", "add", u.Address!, "dev", u.Name!);
                IpCommand.Run("-n", u.PeerNamespace!, "addr", "add", u.PeerAddress!, "dev", u.PeerName!);
                IpCommand.Run("-n", ns, "link", "set", u.Name!, "up");
                IpCommand.Run("-n", u.PeerNamespace!, "link", "set", u.PeerName!, "up");
                IpCommand.Run("-n", ns, "route", "replace", "default", "via", u.Gateway!.ToString(), "dev", u.Name!);
                // The far side reaches the tenant's clients through the tenant namespace.
                foreach (var pool in pools)
                    if (pool.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                    {
                        // The peer's namespace is the operator's: a route it has to the pool through something else is
                        // its own, not to be replaced (and lost at stop).
                        if (Foreign(u.PeerNamespace, pool, r => r.Through(u.PeerName!, UplinkVia)) is { } held)
                            throw new InvalidOperationException($"tenant {config.Name}: namespace {u.PeerNamespace} routes the pool {pool} already ({held}); remove that route or pick another pool");
                        IpCommand.Run("-n", u.PeerNamespace!, "route", "replace", pool.ToString(), "via", UplinkVia!, "dev", u.PeerName!);
                    }
                break;
            case "link":
                // After a crash the link is still in the leftover namespace this server takes over.
                if (!IpCommand.TryRun("-n", ns, "link", "show", "dev", u.Name!)) IpCommand.Run("link", "set", "dev", u.Name!, "netns", ns);
                if (u.Address is not null) IpCommand.Run("-n", ns, "addr", "replace", u.Address, "dev", u.Name!);
                IpCommand.Run("-n", ns, "link", "set", u.Name!, "up");
                if (u.Gateway is not null) IpCommand.Run("-n", ns, "route", "replace", "default", "via", u.Gateway.ToString(), "dev", u.Name!);
                break;
        }
        // Answering neighbour solicitations for the clients' IPv6 addresses takes proxy NDP on the link (proxy ARP
        // needs no such switch: the kernel answers for each proxy entry).
        if (u.ProxyArp && config.Pool6 is not null) Sysctl(ns, $"net/ipv6/conf/{u.Name}/proxy_ndp");
    }

    public IReadOnlyList<string> Route(IEnumerable<IpNetwork> add, IEnumerable<IpNetwork> remove)
    {
        var ns = Name;
        var failed = new List<string>();
        foreach (var net in remove)
        {
            TryIp(failed, $"remove route {net}", In(ns, Family(net), "route", "del", net.ToString(), "dev", config.Device));
            UplinkRoute(failed, net, add: false);
        }
        foreach (var net in add)
        {
            // In the host's namespace the table is the host's own: a route there for the same network (its LAN) is
            // not the tenant's to replace. The tenant's own namespace holds only what the server put there.
            if (ns is null && Foreign(null, net, r => r.Through(config.Device)) is { } held)
                failed.Add($"route {net}: the host routes it already ({held}); not replaced");
            else TryIp(failed, $"route {net}", In(ns, Family(net), "route", "replace", net.ToString(), "dev", config.Device));
            UplinkRoute(failed, net, add: true);
        }
        return failed;
    }

    public IReadOnlyList<string> Readdress(IpNetwork? before, IPAddress? beforeGateway, IpNetwork? after, IPAddress? afterGateway)
    {
        var ns = Name;
        var failed = new List<string>();
        // The new address first, so the TUN is never without one; its prefix route comes with it.
        if (after is { } a && afterGateway is not null)
        {
            string[] add = [Family(a), "addr", "replace", $"{afterGateway}/{a.PrefixLength}", "dev", config.Device];
            if (Family(a) == "-6") add = [.. add, "nodad"];
            TryIp(failed, $"address {afterGateway}/{a.PrefixLength}", In(ns, add));
            UplinkRoute(failed, a, add: true);
        }
        if (before is { } b && beforeGateway is not null)
        {
            TryIp(failed, $"remove address {beforeGateway}/{b.PrefixLength}", In(ns, Family(b), "addr", "del", $"{beforeGateway}/{b.PrefixLength}", "dev", config.Device));
            UplinkRoute(failed, b, add: false);
        }
        return failed;
    }

    // A veth uplink's far side reaches the tenant's pools and sites through the tenant namespace, via this address.
    private string? UplinkVia => config.Uplink.Kind == "veth" ? config.Uplink.Address!.Split('/')[0] : null;

    /// <summary>Adds or removes the veth uplink peer's route to <paramref name="net"/> (none for a family the uplink lacks).</summary>
    private void UplinkRoute(List<string> failed, IpNetwork net, bool add)
    {
        var u = config.Uplink;
        if (UplinkVia is not { } via || !SameFamily(net, via)) return;
        // The peer's namespace is the operator's (a service host, a router's): a route it has to the same network
        // through anything but this uplink is its own, and stays.
        if (add && Foreign(u.PeerNamespace, net, r => r.Through(u.PeerName!, via)) is { } held)
        {
            failed.Add($"uplink route {net}: namespace {u.PeerNamespace} routes it already ({held}); not replaced");
            return;
        }
        TryIp(failed, $"{(add ? "" : "remove ")}uplink route {net}", add
            ? ["-n", u.PeerNamespace!, Family(net), "route", "replace", net.ToString(), "via", via, "dev", u.PeerName!]
            : ["-n", u.PeerNamespace!, Family(net), "route", "del", net.ToString(), "via", via]);
    }

    /// <summary>
    /// Runs `ip`; a failure is added to <paramref name="failed"/> as "what: error" instead of thrown, also one that
    /// never ran or did not end (no process could be made, or `ip` hung): a reload's commit calls this, and must not
    /// stop half-way.
    /// </summary>
    private static void TryIp(List<string> failed, string what, string[] args)
    {
        try
        {
            var (code, _, error) = IpCommand.Exec("ip", args, check: false);
            if (code != 0) failed.Add($"{what}: {error.Trim()}");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or TimeoutException or IOException or InvalidOperationException)
        {
            failed.Add($"{what}: {e.Message}");
        }
    }

    public string? Announce(IPAddress address, bool attached)
    {
        var u = config.Uplink;
        if (!u.ProxyArp || u.Name is null) return null;
        var ns = Name;
        bool v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        var (code, _, error) = IpCommand.Exec("ip", In(ns, v6 ? "-6" : "-4", "neigh", attached ? "replace" : "del", "proxy", address.ToString(), "dev", u.Name), check: false);
        if (code != 0 && attached) return $"proxy {(v6 ? "NDP" : "ARP")} for {address} on {u.Name}: {error.Trim()}";
        if (!attached) return null;
        try
        {
            if (v6) Ndp.Announce(ns, u.Name, address);
            else Arp.Announce(ns, u.Name, address);
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    }

    private static string Family(IpNetwork net) =>
        net.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4";

    private static bool SameFamily(IpNetwork net, string address) => IPAddress.Parse(address).AddressFamily == net.Network.AddressFamily;

    private static bool IsMarked(string ns)
    {
        var (code, output, _) = IpCommand.Exec("ip", ["-n", ns, "-o", "link", "show", "dev", "lo"], check: false);
        return code == 0 && output.Contains($"alias {Marker}", StringComparison.Ordinal);
    }

    /// <summary>Claims the namespace for this server, or says that another one holds it.</summary>
    private static FileStream Claim(string tenant, string ns) =>
        FileClaim.TryTake(NetworkNamespace.PathOf(ns), create: false)
        ?? throw new InvalidOperationException(
            $"tenant {tenant}: network namespace {ns} is in use by another isotun server; stop that one first, or give this tenant another namespace");

    /// <summary>Removes the namespace the server owns; a moved-in link goes back to the server's namespace first. Nothing
    /// is done for a namespace this server never claimed (another server's).</summary>
    public void Teardown()
    {
        var ns = Name;
        if (ns is null || _claim is null) return;
        var u = config.Uplink;
        if (u.Kind == "veth") IpCommand.TryRun("-n", ns, "link", "del", "dev", u.Name!);
        // Back to the namespace the server runs in, where it was found.
        if (u.Kind == "link") IpCommand.TryRun("-n", ns, "link", "set", "dev", u.Name!, "netns", Environment.ProcessId.ToString());
        // The TUN went with its queues; a namespace someone else made stays, with what they put in it.
        if (_owned) IpCommand.TryRun("netns", "del", ns);
        _claim.Dispose();
        _claim = null;
    }

    private static string[] In(string? ns, params string[] args) => ns is null ? args : ["-n", ns, .. args];

    /// <summary>
    /// A route <paramref name="ns"/> (null: the host's) has for exactly <paramref name="net"/> that is not the tenant's
    /// (not <paramref name="ours"/>), as `ip route` shows it; or null: none, or only the tenant's (left by a crash, or a
    /// reload).
    /// </summary>
    private static string? Foreign(string? ns, IpNetwork net, Func<IpRoute, bool> ours) =>
        IpCommand.ExactRoutes(ns, Family(net), net.ToString()).FirstOrDefault(r => !ours(r))?.Describe(net.ToString());

    /// <summary>
    /// Turns on the setting at /proc/sys/<paramref name="path"/> in namespace <paramref name="ns"/>: written from a
    /// thread inside it (/proc/sys/net is the writer's namespace's), without procps's `sysctl`, which a minimal Debian
    /// has not. A path, not sysctl's dotted name: an interface name may hold a dot (eth0.100).
    /// </summary>
    private static void Sysctl(string ns, string path) => NetworkNamespace.Run(ns, () =>
    {
        try
        {
            File.WriteAllText("/proc/sys/" + path, "1");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TunException($"namespace {ns}: cannot turn on {path.Replace('/', '.')}: {e.Message}");
        }
    });
}
