using System.Buffers.Binary;

namespace Isotun.Protocol.Offload;

/// <summary>Internet checksum (RFC 1071) pieces: sums, pseudo-headers, folding.</summary>
public static class Checksum
{
    /// <summary>One's-complement sum of <paramref name="data"/> as big-endian 16-bit words, added to <paramref name="initial"/> (not folded).</summary>
    public static ulong Sum(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ulong sum = initial;
        int i = 0;
        // 4 bytes at a time into a 64-bit accumulator: no carry handling needed until the fold.
        for (; i + 4 <= data.Length; i += 4) sum += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
        if (i + 2 <= data.Length) { sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]); i += 2; }
        if (i < data.Length) sum += (ulong)data[i] << 8;
        return sum;
    }

    public static ushort Fold(ulong sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The Internet checksum of <paramref name="data"/>: the complement of its folded sum (zero over data that carries a correct one).</summary>
    public static ushort Of(ReadOnlySpan<byte> data) => (ushort)~Fold(Sum(data));

    /// <summary>Sum of the TCP/UDP pseudo-header for an IP packet whose header is <paramref name="ip"/>.</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> ip, int version, byte protocol, int l4Length)
    {
        ulong sum = version == 4 ? Sum(ip.Slice(12, 8)) : Sum(ip.Slice(8, 32));
        return sum + protocol + (ulong)l4Length;
    }

    /// <summary>Writes the IPv4 header checksum.</summary>
    public static void WriteIpv4HeaderChecksum(Span<byte> header, int headerLength)
    {
        header[10] = 0;
        header[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], Of(header[..headerLength]));
    }

    /// <summary>Computes and writes the full L4 checksum of a packet whose L4 header starts at <paramref name="l4Start"/>.</summary>
    public static void WriteL4Checksum(Span<byte> packet, int version, byte protocol, int l4Start, int checksumOffset)
    {
        var l4 = packet[l4Start..];
        l4[checksumOffset] = 0;
        l4[checksumOffset + 1] = 0;
        ushort c = (ushort)~Fold(Sum(l4, PseudoHeader(packet, version, protocol, l4.Length)));
        if (protocol == 17 && c == 0) c = 0xffff;
        BinaryPrimitives.WriteUInt16BigEndian(l4[checksumOffset..], c);
    }
}
