using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.Tun;

namespace Isotun.UnitTests.InProcess;

/// <summary>The tenant network twin: a memory TUN with the tenant's queues, MTU and offload; no namespace or address; routes are only recorded.</summary>
internal sealed class MemoryTenantNetwork(TenantConfig config, bool uso) : ITenantNetwork
{
    public string? Name => null;

    /// <summary>The tenant's TUN once the server started it.</summary>
    public MemoryTun? Tun { get; private set; }
    public bool TornDown { get; private set; }

    public ITunQueue[] Setup(IPAddress gateway, int prefix, IPAddress? gateway6, int prefix6, IEnumerable<IpNetwork> pools)
    {
        Tun = new MemoryTun(config.Device, config.Queues, config.Mtu, config.Offload, uso);
        return Tun.Queues;
    }

    private readonly List<IpNetwork> _routes = [];

    /// <summary>The subnets routed to the TUN now (sites'), as a kernel would hold them.</summary>
    public IReadOnlyList<IpNetwork> Routes
    {
        get { lock (_routes) return _routes.ToList(); }
    }

    public IReadOnlyList<string> Route(IEnumerable<IpNetwork> add, IEnumerable<IpNetwork> remove)
    {
        lock (_routes)
        {
            foreach (var net in remove) _routes.Remove(net);
            foreach (var net in add) if (!_routes.Contains(net)) _routes.Add(net);
        }
        return [];
    }

    private readonly List<(IPAddress? Before, IPAddress? After)> _readdressed = [];

    /// <summary>Each change of a gateway address the TUN was given, in order.</summary>
    public IReadOnlyList<(IPAddress? Before, IPAddress? After)> Readdressed
    {
        get { lock (_readdressed) return _readdressed.ToList(); }
    }

    public IReadOnlyList<string> Readdress(IpNetwork? before, IPAddress? beforeGateway, IpNetwork? after, IPAddress? afterGateway)
    {
        lock (_readdressed) _readdressed.Add((beforeGateway, afterGateway));
        return [];
    }

    private readonly List<(IPAddress Address, bool Attached)> _announced = [];

    /// <summary>Every announcement, in order.</summary>
    public IReadOnlyList<(IPAddress Address, bool Attached)> Announced
    {
        get { lock (_announced) return _announced.ToList(); }
    }

    public string? Announce(IPAddress address, bool attached)
    {
        lock (_announced) _announced.Add((address, attached));
        return null;
    }

    public void Teardown() => TornDown = true;
}
