using System.Buffers.Binary;
using Isotun.Protocol.Ip;

namespace Isotun.Protocol.Offload;

/// <summary>
/// GSO super-packets: validating a peer's virtio-net header strictly before the kernel sees it, and
/// splitting a super-packet into MTU-sized segments with correct checksums for peers that did not
/// negotiate GSO (stock openconnect). TCP (TSO4/TSO6) always; UDP (USO, gso_type UDP_L4) only where the
/// caller allows it. Never UFO or ECN.
/// </summary>
public static class GsoPacket
{
    private const byte Tcp = 6, Udp = 17;

    /// <summary>
    /// Checks a peer's header against the packet it describes. On success, <paramref name="header"/> is
    /// normalised for a TUN write: hdr_len recomputed (the sender's value is only a hint), csum fields exact.
    /// UDP super-packets (USO) pass only with <paramref name="allowUdp"/>: a peer that negotiated `uso`, or our own TUN.
    /// </summary>
    public static GsoCheckResult Validate(ref VirtioNetHeader header, ReadOnlySpan<byte> packet, int mtu, bool allowUdp = false)
    {
        if (IpPacket.TryParse(packet, out var ip) != IpParseResult.Ok || ip.TotalLength != packet.Length)
            return GsoCheckResult.BadPacket;
        if ((header.Flags & ~(VirtioNetHeader.FlagNeedsChecksum | VirtioNetHeader.FlagDataValid)) != 0)
            return GsoCheckResult.BadType;

        if (header.GsoType == VirtioNetHeader.GsoNone)
        {
            header.GsoSize = 0;
            header.HeaderLength = 0;
            if (!header.NeedsChecksum) return GsoCheckResult.Ok;
            int expected = ip.Protocol switch { Tcp => 16, Udp => 6, _ => -1 };
            if (expected < 0 || header.ChecksumStart != ip.HeaderLength || header.ChecksumOffset != expected
                || header.ChecksumStart + header.ChecksumOffset + 2 > packet.Length)
                return GsoCheckResult.BadOffsets;
            return GsoCheckResult.Ok;
        }

        switch (header.GsoType)
        {
            case VirtioNetHeader.GsoTcpV4 when ip.Version == 4 && ip.Protocol == Tcp:
            case VirtioNetHeader.GsoTcpV6 when ip.Version == 6 && ip.Protocol == Tcp:
                break;
            case VirtioNetHeader.GsoTcpV4 or VirtioNetHeader.GsoTcpV6:
                return GsoCheckResult.WrongVersion;
            case VirtioNetHeader.GsoUdpL4 when allowUdp:
                // One type for both IP versions; the packet must be UDP.
                if (ip.Protocol != Udp) return GsoCheckResult.WrongVersion;
                return ValidateUdp(ref header, packet, ip, mtu);
            default:
                return GsoCheckResult.BadType;
        }
        if (ip.Version == 4 && (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0) return GsoCheckResult.BadPacket; // fragment
        if (!header.NeedsChecksum || header.ChecksumStart != ip.HeaderLength || header.ChecksumOffset != 16)
            return GsoCheckResult.BadOffsets;
        int tcpStart = ip.HeaderLength;
        if (tcpStart + 20 > packet.Length) return GsoCheckResult.BadOffsets;
        int tcpLength = (packet[tcpStart + 12] >> 4) * 4;
        if (tcpLength < 20 || tcpStart + tcpLength > packet.Length) return GsoCheckResult.BadOffsets;
        // Each segment the kernel cuts (headers + gso_size) must fit the tunnel MTU, as a real peer's do; and be no
        // smaller than the least MSS Linux sends with (tcp_min_snd_mss): a gso_size of 1 would turn one 64 KiB frame
        // into 65,000 packets for whoever segments it.
        if (header.GsoSize < MinTcpGsoSize || tcpStart + tcpLength + header.GsoSize > mtu) return GsoCheckResult.BadGsoSize;
        header.HeaderLength = (ushort)(tcpStart + tcpLength);
        return GsoCheckResult.Ok;
    }

    private static GsoCheckResult ValidateUdp(ref VirtioNetHeader header, ReadOnlySpan<byte> packet, in IpPacketInfo ip, int mtu)
    {
        if (ip.Version == 4 && (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0) return GsoCheckResult.BadPacket; // fragment
        if (!header.NeedsChecksum || header.ChecksumStart != ip.HeaderLength || header.ChecksumOffset != 6)
            return GsoCheckResult.BadOffsets;
        int headers = ip.HeaderLength + 8;
        if (headers > packet.Length) return GsoCheckResult.BadOffsets;
        // Each datagram (headers + gso_size) must fit the MTU; and the kernel refuses a UDP "super-packet" of one
        // datagram or less (udp_gso_segment: EINVAL), so it is refused here, where it can be counted.
        // At most as many datagrams as the kernel cuts one into (UDP_MAX_SEGMENTS): a tiny gso_size would otherwise
        // turn one frame into tens of thousands of writes.
        if (header.GsoSize == 0 || headers + header.GsoSize > mtu || packet.Length - headers <= header.GsoSize
            || (packet.Length - headers + header.GsoSize - 1) / header.GsoSize > MaxUdpSegments)
            return GsoCheckResult.BadGsoSize;
        header.HeaderLength = (ushort)headers;
        return GsoCheckResult.Ok;
    }

    /// <summary>The least TCP gso_size taken: Linux's least MSS (net.ipv4.tcp_min_snd_mss).</summary>
    public const int MinTcpGsoSize = 48;

    /// <summary>The most datagrams a UDP super-packet may hold: the kernel's UDP_MAX_SEGMENTS.</summary>
    public const int MaxUdpSegments = 128;

    /// <summary>Is this a UDP super-packet (USO)?</summary>
    public static bool IsUdp(in VirtioNetHeader header) => header.GsoType == VirtioNetHeader.GsoUdpL4;

    /// <summary>How many segments <see cref="WriteSegment"/> produces for a validated super-packet.</summary>
    public static int SegmentCount(in VirtioNetHeader header, int packetLength)
    {
        if (!header.IsGso) return 1;
        int payload = packetLength - header.HeaderLength;
        return payload <= 0 ? 1 : (payload + header.GsoSize - 1) / header.GsoSize;
    }

    /// <summary>
    /// Writes segment <paramref name="index"/> of a validated super-packet into <paramref name="destination"/>
    /// as a complete packet (lengths, IPv4 id and header checksum; TCP sequence and flags or UDP length; full checksum).
    /// For a non-GSO packet with a partial checksum it writes the packet with its checksum completed.
    /// Returns the segment length.
    /// </summary>
    public static int WriteSegment(ReadOnlySpan<byte> packet, in VirtioNetHeader header, int index, Span<byte> destination)
    {
        IpPacket.TryParse(packet, out var ip);
        if (!header.IsGso)
        {
            packet.CopyTo(destination);
            var whole = destination[..packet.Length];
            if (header.NeedsChecksum)
                Checksum.WriteL4Checksum(whole[..ip.TotalLength], ip.Version, ip.Protocol, header.ChecksumStart, header.ChecksumOffset);
            return packet.Length;
        }

        int hdrLen = header.HeaderLength, mss = header.GsoSize;
        int offset = hdrLen + index * mss;
        int segPayload = Math.Min(mss, packet.Length - offset);
        int length = hdrLen + segPayload;
        packet[..hdrLen].CopyTo(destination);
        packet.Slice(offset, segPayload).CopyTo(destination[hdrLen..]);
        var seg = destination[..length];
        bool last = offset + segPayload >= packet.Length;

        if (ip.Version == 4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(seg[2..], (ushort)length);
            ushort id = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            BinaryPrimitives.WriteUInt16BigEndian(seg[4..], (ushort)(id + index));
            Checksum.WriteIpv4HeaderChecksum(seg, ip.HeaderLength);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(seg[4..], (ushort)(length - 40));
        }

        if (ip.Protocol == Udp)
        {
            // Like udp_gso_segment: every datagram gets its own length and a full checksum.
            BinaryPrimitives.WriteUInt16BigEndian(seg[(ip.HeaderLength + 4)..], (ushort)(length - ip.HeaderLength));
            Checksum.WriteL4Checksum(seg, ip.Version, Udp, ip.HeaderLength, 6);
            return length;
        }
        var tcp = seg[ip.HeaderLength..];
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(packet[(ip.HeaderLength + 4)..]);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], seq + (uint)(index * mss));
        // Like the kernel's tcp_gso_segment: FIN and PSH only on the last segment, CWR only on the first.
        if (!last) tcp[13] &= unchecked((byte)~(0x01 | 0x08));
        if (index > 0) tcp[13] &= unchecked((byte)~0x80);
        Checksum.WriteL4Checksum(seg, ip.Version, Tcp, ip.HeaderLength, 16);
        return length;
    }
}
