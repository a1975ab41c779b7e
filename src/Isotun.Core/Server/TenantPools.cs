using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;

namespace Isotun.Server;

/// <summary>
/// A tenant's address pools as they stand: the allocators that lease from them and the prefixes the packet path
/// compares against. Immutable as a whole: a reload that changes a pool makes new ones and swaps them in.
/// </summary>
internal sealed class TenantPools
{
    private readonly (PrefixMatch Pool, IpKey Gateway) _match4;
    private readonly (PrefixMatch Pool, IpKey Gateway) _match6;

    public TenantPools(IpNetwork pool, IpNetwork? pool6)
    {
        V4 = new LeaseAllocator(pool);
        _match4 = (PrefixMatch.Of(pool), IpKey.FromAddress(V4.Gateway));
        if (pool6 is { } p6)
        {
            V6 = new LeaseAllocator(p6);
            _match6 = (PrefixMatch.Of(p6), IpKey.FromAddress(V6.Gateway));
        }
    }

    public LeaseAllocator V4 { get; }
    public LeaseAllocator? V6 { get; }

    /// <summary>The allocator of the address's family; null for IPv6 without a pool6.</summary>
    public LeaseAllocator? For(IPAddress address) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? V6 : V4;

    /// <summary>
    /// The IPv6 address at the same place in pool6 as <paramref name="v4"/> in the IPv4 pool (the gateway's is the
    /// gateway's), or null without a pool6 or when pool6 has no such address. On a cluster node a client's IPv6 address
    /// is this one, so it follows the IPv4 address the cluster binds to the user, on whichever node.
    /// </summary>
    public IPAddress? Mapped6(IPAddress v4)
    {
        if (V6 is null) return null;
        Span<byte> four = stackalloc byte[4], base4 = stackalloc byte[4], six = stackalloc byte[16];
        v4.TryWriteBytes(four, out _);
        V4.Network.Network.TryWriteBytes(base4, out _);
        V6.Network.Network.TryWriteBytes(six, out _);
        uint offset = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(four) - System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(base4);
        ulong low = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(six[8..]) + offset;
        if (low < offset) return null; // past the end of the address space
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(six[8..], low);
        var mapped = new IPAddress(six);
        return V6.IsLeasable(mapped) ? mapped : null;
    }

    /// <summary>Can <paramref name="address"/> be leased from these pools?</summary>
    public bool Fits(IPAddress address) => For(address)?.IsLeasable(address) == true;

    /// <summary>Is this destination a client address of these pools (not a gateway)? No allocation: compares keys.</summary>
    public bool IsClientAddress(IpKey destination)
    {
        var (pool, gw) = destination.Version == 4 ? _match4 : _match6;
        return pool.Contains(destination) && destination != gw;
    }
}
