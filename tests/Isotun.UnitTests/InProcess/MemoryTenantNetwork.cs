using System.Net;
using Isotun.Config;
using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.Tun;

namespace Isotun.UnitTests.InProcess;

/// <summary>The tenant network twin: a memory TUN with the tenant's queues, MTU and offload; no namespace, address or route.</summary>
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

    public void Teardown() => TornDown = true;
}
