using System.Buffers.Binary;
using System.Net;

namespace Isotun.Protocol.Ip;

/// <summary>
/// An IP address as a value (big-endian number plus version) so per-packet route lookups can use a
/// Dictionary without allocating an <see cref="IPAddress"/>. IPv4 keys are zero-extended; the version
/// keeps 0.0.0.1 and ::1 distinct.
/// </summary>
public readonly record struct IpKey(UInt128 Value, byte Version)
{
    /// <summary>Key from 4 (IPv4) or 16 (IPv6) network-order bytes.</summary>
    public static IpKey FromBytes(ReadOnlySpan<byte> address) => address.Length switch
    {
        4 => new IpKey(BinaryPrimitives.ReadUInt32BigEndian(address), 4),
        16 => new IpKey(BinaryPrimitives.ReadUInt128BigEndian(address), 6),
        _ => throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(address)),
    };

    /// <summary>Key from an <see cref="IPAddress"/> (scope id is dropped).</summary>
    public static IpKey FromAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written))
        {
            throw new ArgumentException("Unsupported address.", nameof(address));
        }

        return FromBytes(bytes[..written]);
    }

    /// <summary>Converts back to an <see cref="IPAddress"/> (allocates).</summary>
    public IPAddress ToAddress()
    {
        if (Version == 4)
        {
            Span<byte> v4 = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v4, (uint)Value);
            return new IPAddress(v4);
        }

        Span<byte> v6 = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(v6, Value);
        return new IPAddress(v6);
    }

    /// <summary>The textual address, e.g. <c>10.10.0.2</c> or <c>fd00::2</c>.</summary>
    public override string ToString() => Version is 4 or 6 ? ToAddress().ToString() : $"IpKey({Value}, v{Version})";
}
