using Isotun.Client;
using Isotun.Tun;

namespace Isotun.UnitTests.InProcess;

/// <summary>The client network twin: a memory TUN with the granted queues; no address or route is set anywhere.</summary>
internal sealed class MemoryClientNetwork(bool offload, bool uso) : IClientNetwork
{
    private volatile MemoryTun? _tun;

    /// <summary>The client's TUN once the first CONNECT succeeded.</summary>
    public MemoryTun? Tun => _tun;
    public TunnelParameters? Parameters { get; private set; }

    /// <summary>The MTU a reconnect gave the TUN, if one changed it.</summary>
    public int? Mtu { get; private set; }

    public void SetMtu(int mtu) => Mtu = mtu;

    public ITunQueue[] Open(TunnelParameters parameters, int queues, System.Net.IPAddress server)
    {
        Parameters = parameters;
        var tun = new MemoryTun("isotun-client", queues, parameters.Mtu, offload, uso);
        _tun = tun;
        return tun.Queues;
    }
}
