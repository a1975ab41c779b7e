using Isotun.Tun;

namespace Isotun.Client;

/// <summary>
/// The client's side of the kernel: <see cref="KernelClientNetwork"/> opens the TUN and sets its addresses and
/// routes; a twin in tests hands out a memory TUN and touches nothing.
/// </summary>
public interface IClientNetwork
{
    /// <summary>Opens <paramref name="queues"/> queues of the TUN and gives it the tunnel's addresses, MTU and routes.</summary>
    ITunQueue[] Open(TunnelParameters parameters, int queues);
}
