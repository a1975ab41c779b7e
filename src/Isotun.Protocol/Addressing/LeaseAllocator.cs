using System.Net;
using Isotun.Protocol.Ip;

namespace Isotun.Protocol.Addressing;

/// <summary>
/// Hands out tunnel addresses from one prefix. The first address after the network address is the
/// gateway (the server's TUN address) and is never leased; for IPv4 the network and broadcast
/// addresses are never leased either. Leases are sticky: an owner (e.g. "tenant/user") that held an
/// address gets it back while it is still free, because openconnect quits if a reconnect yields a
/// different address. Free addresses are reused oldest-released first, which keeps stickiness working
/// for as long as possible.
/// Thread-safe: every member takes an internal lock, so callers need no locking of their own.
/// </summary>
public sealed class LeaseAllocator
{
    /// <summary>Upper bound on leasable addresses, so an IPv6 /64 does not imply a 2^64 scan.</summary>
    public const int MaxCapacity = 65536;

    private readonly Lock _lock = new();
    private readonly byte _version;
    private readonly UInt128 _firstLeasable;
    private readonly string?[] _holders;        // index -> current owner, null when free
    private readonly string?[] _rememberedBy;   // index -> owner whose sticky address it is
    private readonly bool[] _queued;
    private readonly Queue<int> _released = new();
    private readonly Dictionary<string, int> _remembered = new(StringComparer.Ordinal);
    private int _neverUsed;                     // indices at or above this were never handed out in order
    private int _active;

    /// <summary>Creates a pool. Throws <see cref="ArgumentException"/> when the prefix leaves no leasable address.</summary>
    public LeaseAllocator(IpNetwork network)
    {
        if (network.Network is null)
        {
            throw new ArgumentException("Network is not set.", nameof(network));
        }

        var key = IpKey.FromAddress(network.Network);
        _version = key.Version;
        int hostBits = (_version == 4 ? 32 : 128) - network.PrefixLength;

        // Excluded: network address and gateway, plus broadcast on IPv4.
        int reserved = _version == 4 ? 3 : 2;
        long capacity = hostBits >= 20 ? MaxCapacity : Math.Min(MaxCapacity, (1L << hostBits) - reserved);
        if (capacity < 1)
        {
            throw new ArgumentException($"{network} has no leasable address besides the gateway.", nameof(network));
        }

        Network = network;
        Capacity = (int)capacity;
        Gateway = new IpKey(key.Value + 1, _version).ToAddress();
        _firstLeasable = key.Value + 2;
        _holders = new string?[Capacity];
        _rememberedBy = new string?[Capacity];
        _queued = new bool[Capacity];
    }

    /// <summary>The pool's prefix.</summary>
    public IpNetwork Network { get; }

    /// <summary>The server's address in the pool (network + 1).</summary>
    public IPAddress Gateway { get; }

    /// <summary>Number of leasable addresses (at most <see cref="MaxCapacity"/>).</summary>
    public int Capacity { get; }

    /// <summary>Number of addresses currently leased.</summary>
    public int ActiveCount
    {
        get
        {
            lock (_lock)
            {
                return _active;
            }
        }
    }

    /// <summary>
    /// Leases an address to <paramref name="owner"/>. <paramref name="preferred"/> (e.g. the client's
    /// X-CSTP-Address on reconnect) wins when it is leasable and held by this owner, or free and no other owner's
    /// sticky address (a client asks for any address it likes: it must not take another user's while they are away),
    /// or free and <paramref name="authoritative"/> (the server's own choice: a cluster's binding, a stored lease);
    /// then the owner's previous address if free; then any free address. Null when the pool is exhausted.
    /// </summary>
    public IPAddress? Lease(string owner, IPAddress? preferred = null, bool authoritative = false)
    {
        ArgumentNullException.ThrowIfNull(owner);
        lock (_lock)
        {
            if (preferred is not null && TryIndex(preferred, out int wanted)
                && (_holders[wanted] == owner || (_holders[wanted] is null && (authoritative || _rememberedBy[wanted] is null || _rememberedBy[wanted] == owner))))
            {
                return Assign(wanted, owner);
            }

            if (_remembered.TryGetValue(owner, out int previous) && _holders[previous] is null)
            {
                return Assign(previous, owner);
            }

            while (_neverUsed < Capacity)
            {
                int index = _neverUsed++;
                // Someone's sticky address (reserved at start, or preferred out of order) waits in the released queue.
                if (_holders[index] is null && _rememberedBy[index] is null)
                {
                    return Assign(index, owner);
                }
            }

            while (_released.TryDequeue(out int index))
            {
                _queued[index] = false;
                if (_holders[index] is null)
                {
                    return Assign(index, owner);
                }
            }

            return null;
        }
    }

    /// <summary>Frees an address. The owner keeps its claim for stickiness until someone else takes the address.</summary>
    public bool Release(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        lock (_lock)
        {
            if (!TryIndex(address, out int index) || _holders[index] is null)
            {
                return false;
            }

            _holders[index] = null;
            _active--;
            if (!_queued[index])
            {
                _queued[index] = true;
                _released.Enqueue(index);
            }

            return true;
        }
    }

    /// <summary>True when the address is one this pool hands out (inside it, and neither its gateway nor reserved).</summary>
    public bool IsLeasable(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return TryIndex(address, out _);
    }

    /// <summary>True when the address is currently leased.</summary>
    public bool IsLeased(IPAddress address) => OwnerOf(address) is not null;

    /// <summary>The current holder of the address, or null.</summary>
    public string? OwnerOf(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        lock (_lock)
        {
            return TryIndex(address, out int index) ? _holders[index] : null;
        }
    }

    private IPAddress Assign(int index, string owner)
    {
        if (_holders[index] is null)
        {
            _active++;
        }

        _holders[index] = owner;

        // One sticky address per owner and one owner per address keeps this memory bounded by Capacity.
        if (_rememberedBy[index] is { } previousOwner && previousOwner != owner)
        {
            _remembered.Remove(previousOwner);
        }

        if (_remembered.TryGetValue(owner, out int old) && old != index && _rememberedBy[old] == owner)
        {
            _rememberedBy[old] = null;
        }

        _remembered[owner] = index;
        _rememberedBy[index] = owner;
        return new IpKey(_firstLeasable + (uint)index, _version).ToAddress();
    }

    private bool TryIndex(IPAddress address, out int index)
    {
        index = -1;
        var key = IpKey.FromAddress(address);
        if (key.Version != _version || key.Value < _firstLeasable || key.Value - _firstLeasable >= (UInt128)Capacity)
        {
            return false;
        }

        index = (int)(key.Value - _firstLeasable);
        return true;
    }
}
