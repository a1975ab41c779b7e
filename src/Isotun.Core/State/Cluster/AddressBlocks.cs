using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;

namespace Isotun.State.Cluster;

/// <summary>
/// A tenant's pool cut into equal, aligned blocks of <see cref="BlockSize"/> addresses: block <c>i</c> holds the
/// addresses from <c>network + i × size</c> on. As in <see cref="LeaseAllocator"/>, the network address and the
/// gateway (network + 1) are never handed out, nor the IPv4 broadcast address, and a pool larger than
/// <see cref="LeaseAllocator.MaxCapacity"/> addresses (an IPv6 /64) uses only its first that many.
/// </summary>
public sealed class AddressBlocks
{
    public const int MinBlockSize = 4;
    public const int MaxBlockSize = 4096;

    private readonly UInt128 _first;
    private readonly UInt128 _last;
    private readonly byte _version;

    /// <exception cref="ArgumentException">The block size is not a power of two in range, or larger than the pool.</exception>
    public AddressBlocks(IpNetwork network, int blockSize)
    {
        if (network.Network is null) throw new ArgumentException("the pool is not set", nameof(network));
        if (blockSize is < MinBlockSize or > MaxBlockSize || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentException($"block size {blockSize}: a block holds a power of two from {MinBlockSize} to {MaxBlockSize} addresses", nameof(blockSize));
        var key = IpKey.FromAddress(network.Network);
        _version = key.Version;
        int hostBits = (_version == 4 ? 32 : 128) - network.PrefixLength;
        long size = hostBits >= 17 ? LeaseAllocator.MaxCapacity : 1L << hostBits;
        if (size < blockSize)
            throw new ArgumentException($"block size {blockSize}: the pool {network} has only {size} addresses", nameof(blockSize));
        Network = network;
        BlockSize = blockSize;
        Count = (int)(size / blockSize);
        _first = key.Value;
        _last = _version == 4 && hostBits < 17 ? key.Value + (UInt128)size - 1 : UInt128.MaxValue; // the IPv4 broadcast address
    }

    public IpNetwork Network { get; }

    public int BlockSize { get; }

    /// <summary>How many blocks the pool has.</summary>
    public int Count { get; }

    /// <summary>The block that holds <paramref name="address"/>, or -1 when no block of the pool does.</summary>
    public int IndexOf(IPAddress address)
    {
        var key = IpKey.FromAddress(address);
        if (key.Version != _version || key.Value < _first) return -1;
        var offset = key.Value - _first;
        return offset < (UInt128)Count * (UInt128)BlockSize ? (int)(offset / (UInt128)BlockSize) : -1;
    }

    /// <summary>The first address of block <paramref name="index"/>: the block's name in the store.</summary>
    public IPAddress Start(int index) => new IpKey(_first + (UInt128)index * (UInt128)BlockSize, _version).ToAddress();

    /// <summary>The addresses of block <paramref name="index"/> that may be handed out, in order.</summary>
    public IEnumerable<IPAddress> Usable(int index)
    {
        var start = _first + (UInt128)index * (UInt128)BlockSize;
        for (int i = 0; i < BlockSize; i++)
        {
            var value = start + (UInt128)i;
            if (value - _first < 2 || value == _last) continue;
            yield return new IpKey(value, _version).ToAddress();
        }
    }

    /// <summary>Whether <paramref name="address"/> may be handed out from this pool.</summary>
    public bool IsUsable(IPAddress address)
    {
        var key = IpKey.FromAddress(address);
        return IndexOf(address) >= 0 && key.Value - _first >= 2 && key.Value != _last;
    }
}
