using System.Net;
using Isotun.Tun;

namespace Isotun.Client;

/// <summary>
/// The client's side of the kernel: <see cref="KernelClientNetwork"/> opens the TUN and sets its addresses and
/// routes; a twin in tests hands out a memory TUN and touches nothing.
/// </summary>
public interface IClientNetwork
{
    /// <summary>
    /// Opens <paramref name="queues"/> queues of the TUN and gives it the tunnel's addresses, MTU and routes;
    /// <paramref name="server"/> is the address the tunnel's own connections go to, which must stay outside it.
    /// </summary>
    ITunQueue[] Open(TunnelParameters parameters, int queues, IPAddress server);

    /// <summary>Undoes what <see cref="Open"/> set outside the TUN (the host route to the server), once the TUN is closed.</summary>
    void Close() { }

    /// <summary>Gives the open TUN a new MTU (a reconnect's server gave another).</summary>
    void SetMtu(int mtu);
}
