using System.Buffers.Binary;
using System.Net;
using Isotun.Protocol.Offload;
using Isotun.UnitTests.Protocol.Ip;

namespace Isotun.UnitTests.Offload;

/// <summary>What a TCP segment of a test flow looks like; tests vary one field at a time.</summary>
public sealed record TcpSpec
{
    public int Version { get; init; } = 4;
    public uint Seq { get; init; } = 0x10000000;
    public uint Ack { get; init; } = 0x20000000;
    public byte Flags { get; init; } = Segments.Ack;
    public ushort Window { get; init; } = 502;
    public ushort SourcePort { get; init; } = 40000;
    public ushort DestinationPort { get; init; } = 5201;
    /// <summary>TCP options, padded to 4 bytes. Default: NOP NOP timestamps, as Linux sends on an established flow.</summary>
    public byte[] Options { get; init; } = Segments.Timestamps(0x01020304, 0x0a0b0c0d);
    public ushort IpId { get; init; } = 0x1234;
    public byte Ttl { get; init; } = 64;
    public byte Tos { get; init; }
    public bool DontFragment { get; init; } = true;
    /// <summary>Raw IPv4 flags/fragment field; overrides <see cref="DontFragment"/> when set.</summary>
    public ushort? FragmentField { get; init; }
    public int Ipv4OptionsLength { get; init; }
    public uint FlowLabel { get; init; }
    public IPAddress? Source { get; init; }
    public IPAddress? Destination { get; init; }
}

/// <summary>
/// Builds real IPv4/IPv6 TCP (and UDP) packets with correct checksums, TCP super-packets as a TUN with TSO
/// hands them over, and checks checksums from scratch (through <see cref="PacketBuilder"/>, not the code under test).
/// </summary>
internal static class Segments
{
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10, Urg = 0x20, Ece = 0x40, Cwr = 0x80;
    public const int Mtu = 1400;

    public static byte[] Timestamps(uint value, uint echo)
    {
        var o = new byte[12];
        o[0] = 1;
        o[1] = 1;
        o[2] = 8;
        o[3] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(4), value);
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8), echo);
        return o;
    }

    /// <summary>Deterministic payload bytes: position-dependent so a misplaced or repeated chunk shows.</summary>
    public static byte[] Payload(int length, int seed = 1)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static int IpHeaderLength(TcpSpec s) => s.Version == 4 ? 20 + s.Ipv4OptionsLength : 40;

    public static int TcpHeaderLength(TcpSpec s) => 20 + (s.Options.Length + 3) / 4 * 4;

    /// <summary>A complete TCP packet with valid IPv4 header and TCP checksums.</summary>
    public static byte[] Tcp(TcpSpec s, ReadOnlySpan<byte> payload)
    {
        var packet = Layout(s, payload);
        FinishChecksums(packet, s);
        return packet;
    }

    /// <summary>
    /// A TCP super-packet as a TUN with TSO reads it: one header over the whole payload, IP length covering all
    /// of it, and the TCP checksum field holding only the pseudo-header sum (CHECKSUM_PARTIAL). The header's
    /// hdr_len is the whole first segment, as the kernel may report on the forward path (only a hint).
    /// </summary>
    public static (VirtioNetHeader Header, byte[] Packet) SuperPacket(TcpSpec s, ReadOnlySpan<byte> payload, int gsoSize)
    {
        var packet = Layout(s, payload);
        int ip = IpHeaderLength(s), tcp = TcpHeaderLength(s);
        if (s.Version == 4) Ipv4HeaderChecksum(packet, ip);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 16), PseudoHeaderPartial(packet, ip, 6, packet.Length - ip));
        var header = new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsChecksum,
            GsoType = s.Version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6,
            HeaderLength = (ushort)Math.Min(packet.Length, ip + tcp + gsoSize),
            GsoSize = (ushort)gsoSize,
            ChecksumStart = (ushort)ip,
            ChecksumOffset = 16,
        };
        return (header, packet);
    }

    /// <summary>A packet with CHECKSUM_PARTIAL but no GSO, as a TUN with checksum offload reads a small one.</summary>
    public static (VirtioNetHeader Header, byte[] Packet) PartialChecksum(TcpSpec s, ReadOnlySpan<byte> payload)
    {
        var packet = Layout(s, payload);
        int ip = IpHeaderLength(s);
        if (s.Version == 4) Ipv4HeaderChecksum(packet, ip);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 16), PseudoHeaderPartial(packet, ip, 6, packet.Length - ip));
        return (new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsChecksum, ChecksumStart = (ushort)ip, ChecksumOffset = 16 }, packet);
    }

    /// <summary>A UDP packet whose checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL).</summary>
    public static (VirtioNetHeader Header, byte[] Packet) PartialUdp(int version, ReadOnlySpan<byte> payload)
    {
        int ip = version == 4 ? 20 : 40;
        var packet = new byte[ip + 8 + payload.Length];
        WriteIpHeader(packet, new TcpSpec { Version = version }, 17);
        int udp = ip;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(udp), 5353);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(udp + 2), 53);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(udp + 4), (ushort)(8 + payload.Length));
        payload.CopyTo(packet.AsSpan(udp + 8));
        if (version == 4) Ipv4HeaderChecksum(packet, ip);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(udp + 6), PseudoHeaderPartial(packet, ip, 17, packet.Length - ip));
        return (new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsChecksum, ChecksumStart = (ushort)ip, ChecksumOffset = 6 }, packet);
    }

    /// <summary>A UDP super-packet as a TUN with USO reads one (gso_type UDP_L4, partial checksum; IPv4 id 0x1234).</summary>
    public static (VirtioNetHeader Header, byte[] Packet) UdpSuperPacket(int version, ReadOnlySpan<byte> payload, int gsoSize)
    {
        var (header, packet) = PartialUdp(version, payload);
        header.GsoType = VirtioNetHeader.GsoUdpL4;
        header.GsoSize = (ushort)gsoSize;
        header.HeaderLength = (ushort)((version == 4 ? 20 : 40) + 8);
        return (header, packet);
    }

    /// <summary>A plain ICMP echo (IPv4) of <paramref name="length"/> bytes: not TCP, never merged.</summary>
    public static byte[] Icmp(int length = 84)
    {
        var packet = new byte[length];
        WriteIpHeader(packet, new TcpSpec(), 1);
        packet[20] = 8;
        Ipv4HeaderChecksum(packet, 20);
        return packet;
    }

    /// <summary>The segments the kernel's TSO would make of a super-packet: what a splitter must reproduce byte for byte.</summary>
    public static List<byte[]> ExpectedSegments(TcpSpec s, byte[] payload, int mss)
    {
        var result = new List<byte[]>();
        int count = Math.Max(1, (payload.Length + mss - 1) / mss);
        for (int i = 0; i < count; i++)
        {
            int start = i * mss, length = Math.Min(mss, payload.Length - start);
            bool first = i == 0, last = i == count - 1;
            byte flags = s.Flags;
            if (!last) flags &= unchecked((byte)~(Fin | Psh));
            if (!first) flags &= unchecked((byte)~Cwr);
            result.Add(Tcp(s with { Seq = s.Seq + (uint)start, IpId = (ushort)(s.IpId + i), Flags = flags }, payload.AsSpan(start, length)));
        }
        return result;
    }

    public static bool Ipv4HeaderValid(ReadOnlySpan<byte> packet)
    {
        int length = (packet[0] & 0x0f) * 4;
        uint sum = 0;
        for (int i = 0; i < length; i += 2) sum += (uint)(packet[i] << 8 | packet[i + 1]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return sum == 0xffff;
    }

    /// <summary>TCP checksum verified from scratch (pseudo-header included).</summary>
    public static bool TcpChecksumValid(byte[] packet) =>
        PacketBuilder.TcpChecksumValid(packet, packet[0] >> 4 == 4 ? (packet[0] & 0x0f) * 4 : 40, packet[0] >> 4);

    /// <summary>UDP checksum verified from scratch (pseudo-header included).</summary>
    public static bool UdpChecksumValid(byte[] packet)
    {
        int ip = packet[0] >> 4 == 4 ? 20 : 40;
        uint sum = PseudoHeaderSum(packet, ip, 17, packet.Length - ip);
        for (int i = ip; i < packet.Length; i += 2) sum += (uint)(packet[i] << 8 | (i + 1 < packet.Length ? packet[i + 1] : 0));
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return sum == 0xffff && BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(ip + 6)) != 0;
    }

    /// <summary>What the kernel does with CHECKSUM_PARTIAL: sum from csum_start to the end (field included), complement, store.</summary>
    public static void CompleteChecksum(byte[] packet, int checksumStart, int checksumOffset)
    {
        uint sum = 0;
        for (int i = checksumStart; i < packet.Length; i += 2) sum += (uint)(packet[i] << 8 | (i + 1 < packet.Length ? packet[i + 1] : 0));
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(checksumStart + checksumOffset), (ushort)~sum);
    }

    public static ushort PseudoHeaderPartial(byte[] packet, int ipHeader, byte protocol, int l4Length)
    {
        uint sum = PseudoHeaderSum(packet, ipHeader, protocol, l4Length);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    public static ReadOnlySpan<byte> TcpPayload(byte[] packet)
    {
        int ip = packet[0] >> 4 == 4 ? (packet[0] & 0x0f) * 4 : 40;
        return packet.AsSpan(ip + (packet[ip + 12] >> 4) * 4);
    }

    private static uint PseudoHeaderSum(byte[] packet, int ipHeader, byte protocol, int l4Length)
    {
        uint sum = 0;
        var (start, length) = packet[0] >> 4 == 4 ? (12, 8) : (8, 32);
        for (int i = start; i < start + length; i += 2) sum += (uint)(packet[i] << 8 | packet[i + 1]);
        return sum + protocol + (uint)l4Length;
    }

    private static byte[] Layout(TcpSpec s, ReadOnlySpan<byte> payload)
    {
        int ip = IpHeaderLength(s), tcp = TcpHeaderLength(s);
        var packet = new byte[ip + tcp + payload.Length];
        WriteIpHeader(packet, s, 6);
        var t = packet.AsSpan(ip);
        BinaryPrimitives.WriteUInt16BigEndian(t, s.SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], s.DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], s.Seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], s.Ack);
        t[12] = (byte)(tcp / 4 << 4);
        t[13] = s.Flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], s.Window);
        s.Options.CopyTo(t[20..]);
        payload.CopyTo(t[tcp..]);
        return packet;
    }

    private static void WriteIpHeader(byte[] packet, TcpSpec s, byte protocol)
    {
        if (s.Version == 4)
        {
            int ip = 20 + s.Ipv4OptionsLength;
            packet[0] = (byte)(0x40 | ip / 4);
            packet[1] = s.Tos;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), s.IpId);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), s.FragmentField ?? (ushort)(s.DontFragment ? 0x4000 : 0));
            packet[8] = s.Ttl;
            packet[9] = protocol;
            (s.Source ?? PacketBuilder.V4Source).TryWriteBytes(packet.AsSpan(12), out _);
            (s.Destination ?? PacketBuilder.V4Destination).TryWriteBytes(packet.AsSpan(16), out _);
            for (int i = 20; i < ip; i++) packet[i] = 0x01; // NOP options
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(packet, 0x60000000u | (uint)s.Tos << 20 | (s.FlowLabel & 0xfffff));
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
            packet[6] = protocol;
            packet[7] = s.Ttl;
            (s.Source ?? PacketBuilder.V6Source).TryWriteBytes(packet.AsSpan(8), out _);
            (s.Destination ?? PacketBuilder.V6Destination).TryWriteBytes(packet.AsSpan(24), out _);
        }
    }

    private static void FinishChecksums(byte[] packet, TcpSpec s)
    {
        int ip = IpHeaderLength(s);
        if (s.Version == 4) Ipv4HeaderChecksum(packet, ip);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 16), PseudoHeaderPartial(packet, ip, 6, packet.Length - ip));
        CompleteChecksum(packet, ip, 16);
    }

    private static void Ipv4HeaderChecksum(byte[] packet, int ipHeader)
    {
        packet[10] = packet[11] = 0;
        uint sum = 0;
        for (int i = 0; i < ipHeader; i += 2) sum += (uint)(packet[i] << 8 | packet[i + 1]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), (ushort)~sum);
    }
}
