using System.Net;
using System.Net.Sockets;

namespace Isotun.Transport.Listening;

/// <summary>
/// The unit a per-source limit counts: an IPv4 address, or an IPv6 /64. One IPv6 host usually holds a whole /64, so
/// counting single IPv6 addresses would let it open as many connections as it has addresses. IPv4-mapped IPv6
/// addresses count as their IPv4 address.
/// </summary>
public static class SourceKey
{
    public static IPAddress Of(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) return address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }
}
