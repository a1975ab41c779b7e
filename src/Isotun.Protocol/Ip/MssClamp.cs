using System.Buffers.Binary;

namespace Isotun.Protocol.Ip;

/// <summary>
/// Rewrites the MSS option of TCP SYNs so connections through the tunnel never send segments that
/// would need fragmenting (PMTU discovery is unreliable behind VPNs). Runs in place, per packet, without allocation.
/// </summary>
public static class MssClamp
{
    private const byte TcpProtocol = 6;
    private const int TcpMinHeader = 20;
    private const byte SynFlag = 0x02;
    private const byte OptionEnd = 0;
    private const byte OptionNop = 1;
    private const byte OptionMss = 2;

    /// <summary>
    /// Lowers the MSS of an IPv4/IPv6 TCP SYN to <paramref name="maxMss"/> if it is larger, fixing the checksum
    /// incrementally. Returns true when the packet was changed. Malformed packets are left alone.
    /// </summary>
    public static bool TryClamp(Span<byte> packet, int maxMss) => TryClamp(packet, maxMss, checksumIsPartial: false);

    /// <summary>
    /// As <see cref="TryClamp(Span{byte}, int)"/>; with <paramref name="checksumIsPartial"/> (a packet from a TUN with
    /// checksum offload, CHECKSUM_PARTIAL) the checksum field holds only the pseudo-header sum and is left alone:
    /// the kernel computes the real checksum over the rewritten bytes.
    /// </summary>
    public static bool TryClamp(Span<byte> packet, int maxMss, bool checksumIsPartial)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxMss);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxMss, ushort.MaxValue);

        if (IpPacket.TryParse(packet, out var info) != IpParseResult.Ok || info.Protocol != TcpProtocol)
        {
            return false;
        }

        // Only the first fragment carries the TCP header.
        if (info.Version == 4 && (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x1fff) != 0)
        {
            return false;
        }

        var tcp = packet[info.HeaderLength..info.TotalLength];
        if (tcp.Length < TcpMinHeader || (tcp[13] & SynFlag) == 0)
        {
            return false;
        }

        int optionsEnd = (tcp[12] >> 4) * 4;
        if (optionsEnd < TcpMinHeader || optionsEnd > tcp.Length)
        {
            return false;
        }

        int i = TcpMinHeader;
        while (i < optionsEnd)
        {
            byte kind = tcp[i];
            if (kind == OptionEnd)
            {
                return false;
            }

            if (kind == OptionNop)
            {
                i++;
                continue;
            }

            if (i + 1 >= optionsEnd)
            {
                return false;
            }

            int length = tcp[i + 1];
            if (length < 2 || i + length > optionsEnd)
            {
                return false;
            }

            if (kind == OptionMss && length == 4)
            {
                ushort mss = BinaryPrimitives.ReadUInt16BigEndian(tcp[(i + 2)..]);
                if (mss <= maxMss)
                {
                    return false;
                }

                BinaryPrimitives.WriteUInt16BigEndian(tcp[(i + 2)..], (ushort)maxMss);
                if (!checksumIsPartial) AdjustChecksum(tcp, i + 2, mss, (ushort)maxMss);
                return true;
            }

            i += length;
        }

        return false;
    }

    /// <summary>The MSS that fits an MTU: minus 40 bytes of IPv4+TCP headers, or 60 for IPv6+TCP.</summary>
    public static int MssForMtu(int mtu, int ipVersion) => ipVersion switch
    {
        4 => mtu - 40,
        6 => mtu - 60,
        _ => throw new ArgumentOutOfRangeException(nameof(ipVersion), "IP version must be 4 or 6."),
    };

    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). An option can start at any byte, so a 16-bit value at an
    // odd offset straddles two checksum words; in one's-complement arithmetic that equals byte-swapping it.
    private static void AdjustChecksum(Span<byte> tcp, int fieldOffset, ushort oldValue, ushort newValue)
    {
        if ((fieldOffset & 1) != 0)
        {
            oldValue = BinaryPrimitives.ReverseEndianness(oldValue);
            newValue = BinaryPrimitives.ReverseEndianness(newValue);
        }

        ushort checksum = BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]);
        uint sum = (uint)(ushort)~checksum + (ushort)~oldValue + newValue;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], (ushort)~sum);
    }
}
