using System.Buffers.Binary;
using System.Net;

namespace Isotun.UnitTests.Protocol.Ip;

/// <summary>Builds real IPv4/IPv6 TCP packets with correct checksums, and verifies checksums from scratch.</summary>
internal static class PacketBuilder
{
    public const byte Syn = 0x02;
    public const byte Ack = 0x10;

    public static readonly IPAddress V4Source = IPAddress.Parse("10.10.0.2");
    public static readonly IPAddress V4Destination = IPAddress.Parse("93.184.216.34");
    public static readonly IPAddress V6Source = IPAddress.Parse("fd00:10::2");
    public static readonly IPAddress V6Destination = IPAddress.Parse("2001:db8:1:2::80");

    /// <summary>Linux-like SYN options: MSS, SACK-permitted, timestamps, NOP, window scale.</summary>
    public static byte[] LinuxSynOptions(ushort mss) =>
        [0x02, 0x04, (byte)(mss >> 8), (byte)mss, 0x04, 0x02, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07];

    public static byte[] Ipv4Tcp(byte[] tcpOptions, byte flags = Syn, int payloadLength = 0, ushort fragmentField = 0x4000, int ipOptionsLength = 0)
    {
        var tcp = TcpSegment(tcpOptions, flags, payloadLength);
        int ipHeader = 20 + ipOptionsLength;
        var packet = new byte[ipHeader + tcp.Length];
        packet[0] = (byte)(0x40 | (ipHeader / 4));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 0x1234);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), fragmentField);
        packet[8] = 64;
        packet[9] = 6;
        V4Source.TryWriteBytes(packet.AsSpan(12), out _);
        V4Destination.TryWriteBytes(packet.AsSpan(16), out _);
        for (int i = 20; i < ipHeader; i++)
        {
            packet[i] = 0x01; // NOP IP options
        }

        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Checksum(0, packet.AsSpan(0, ipHeader)));
        tcp.CopyTo(packet, ipHeader);
        SetTcpChecksum(packet, ipHeader, 4);
        return packet;
    }

    public static byte[] Ipv6Tcp(byte[] tcpOptions, byte flags = Syn, int payloadLength = 0, byte nextHeader = 6)
    {
        var tcp = TcpSegment(tcpOptions, flags, payloadLength);
        var packet = new byte[40 + tcp.Length];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)tcp.Length);
        packet[6] = nextHeader;
        packet[7] = 64;
        V6Source.TryWriteBytes(packet.AsSpan(8), out _);
        V6Destination.TryWriteBytes(packet.AsSpan(24), out _);
        tcp.CopyTo(packet, 40);
        SetTcpChecksum(packet, 40, 6);
        return packet;
    }

    public static ushort Mss(byte[] packet, int tcpOffset, int mssOptionOffset) =>
        BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(tcpOffset + mssOptionOffset + 2));

    /// <summary>True when the TCP checksum (with pseudo-header) verifies, computed from scratch.</summary>
    public static bool TcpChecksumValid(byte[] packet, int tcpOffset, int version)
    {
        uint sum = PseudoHeaderSum(packet, tcpOffset, version);
        return Fold(Sum(sum, packet.AsSpan(tcpOffset))) == 0xffff;
    }

    private static byte[] TcpSegment(byte[] options, byte flags, int payloadLength)
    {
        int optionsLength = (options.Length + 3) / 4 * 4;
        var tcp = new byte[20 + optionsLength + payloadLength];
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(0), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), 443);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), 0xdeadbeef);
        tcp[12] = (byte)((20 + optionsLength) / 4 << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 64240);
        options.CopyTo(tcp, 20);
        for (int i = 0; i < payloadLength; i++)
        {
            tcp[20 + optionsLength + i] = (byte)(i * 7);
        }

        return tcp;
    }

    private static void SetTcpChecksum(byte[] packet, int tcpOffset, int version)
    {
        packet[tcpOffset + 16] = 0;
        packet[tcpOffset + 17] = 0;
        uint sum = PseudoHeaderSum(packet, tcpOffset, version);
        ushort checksum = (ushort)~Fold(Sum(sum, packet.AsSpan(tcpOffset)));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(tcpOffset + 16), checksum);
    }

    private static uint PseudoHeaderSum(byte[] packet, int tcpOffset, int version)
    {
        int tcpLength = packet.Length - tcpOffset;
        Span<byte> pseudo = stackalloc byte[40];
        if (version == 4)
        {
            packet.AsSpan(12, 8).CopyTo(pseudo);
            pseudo[8] = 0;
            pseudo[9] = 6;
            BinaryPrimitives.WriteUInt16BigEndian(pseudo[10..], (ushort)tcpLength);
            return Sum(0, pseudo[..12]);
        }

        packet.AsSpan(8, 32).CopyTo(pseudo);
        Span<byte> tail = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(tail, (uint)tcpLength);
        tail[7] = 6;
        return Sum(Sum(0, pseudo), tail);
    }

    private static ushort Checksum(uint initial, ReadOnlySpan<byte> data) => (ushort)~Fold(Sum(initial, data));

    private static uint Sum(uint sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
        }

        if (i < data.Length)
        {
            sum += (uint)(data[i] << 8);
        }

        return sum;
    }

    private static ushort Fold(uint sum)
    {
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)sum;
    }
}
