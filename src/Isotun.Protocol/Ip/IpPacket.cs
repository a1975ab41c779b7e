using System.Buffers.Binary;

namespace Isotun.Protocol.Ip;

/// <summary>Allocation-free IPv4/IPv6 header parsing for routing tunnel packets.</summary>
public static class IpPacket
{
    private const int Ipv4MinHeader = 20;
    private const int Ipv6Header = 40;

    /// <summary>Validates the fixed header. Trailing bytes after <see cref="IpPacketInfo.TotalLength"/> are allowed.</summary>
    public static IpParseResult TryParse(ReadOnlySpan<byte> packet, out IpPacketInfo info)
    {
        info = default;
        if (packet.IsEmpty)
        {
            return IpParseResult.TooShort;
        }

        switch (packet[0] >> 4)
        {
            case 4:
            {
                if (packet.Length < Ipv4MinHeader)
                {
                    return IpParseResult.TooShort;
                }

                int headerLength = (packet[0] & 0x0f) * 4;
                if (headerLength < Ipv4MinHeader)
                {
                    return IpParseResult.BadHeaderLength;
                }

                if (headerLength > packet.Length)
                {
                    return IpParseResult.TooShort;
                }

                int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                if (total < headerLength || total > packet.Length)
                {
                    return IpParseResult.BadTotalLength;
                }

                info = new IpPacketInfo(4, headerLength, total, packet[9]);
                return IpParseResult.Ok;
            }

            case 6:
            {
                if (packet.Length < Ipv6Header)
                {
                    return IpParseResult.TooShort;
                }

                int total = Ipv6Header + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
                if (total > packet.Length)
                {
                    return IpParseResult.BadTotalLength;
                }

                info = new IpPacketInfo(6, Ipv6Header, total, packet[6]);
                return IpParseResult.Ok;
            }

            default:
                return IpParseResult.BadVersion;
        }
    }

    /// <summary>Source address bytes (4 or 16) of a packet that <see cref="TryParse"/> accepted.</summary>
    public static ReadOnlySpan<byte> Source(ReadOnlySpan<byte> packet, in IpPacketInfo info) =>
        info.Version == 4 ? packet.Slice(12, 4) : packet.Slice(8, 16);

    /// <summary>Destination address bytes (4 or 16) of a packet that <see cref="TryParse"/> accepted.</summary>
    public static ReadOnlySpan<byte> Destination(ReadOnlySpan<byte> packet, in IpPacketInfo info) =>
        info.Version == 4 ? packet.Slice(16, 4) : packet.Slice(24, 16);
}
