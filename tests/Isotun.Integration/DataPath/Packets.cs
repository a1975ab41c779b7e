using System.Buffers.Binary;
using System.Net;
using Isotun.Protocol.Offload;

namespace Isotun.Integration.DataPath;

/// <summary>TCP super-packets with correct checksums, for the raw client (<see cref="RawCstpClient"/>).</summary>
internal static class Packets
{
    /// <summary>
    /// A TCP super-packet of <paramref name="segments"/> full segments (an ACK flow with timestamps, not part of any
    /// connection) as an Isotun peer sends it: header and packet, CHECKSUM_PARTIAL, made by the GRO merge itself.
    /// </summary>
    public static (VirtioNetHeader Header, byte[] Packet) SuperPacket(IPAddress source, IPEndPoint destination, ushort sourcePort, int segments, int mss = 1348)
    {
        var gro = new TcpCoalescer();
        for (int i = 0; i < segments; i++)
        {
            var segment = Segment(source, destination, sourcePort, 0x10000000u + (uint)(i * mss), mss);
            Assert.True(i == 0 ? gro.TryStart(segment) : gro.TryAppend(segment));
        }
        var framed = gro.Flush().ToArray();
        return (VirtioNetHeader.Read(framed), framed[VirtioNetHeader.Length..]);
    }

    private static byte[] Segment(IPAddress source, IPEndPoint destination, ushort sourcePort, uint seq, int payload)
    {
        var p = new byte[52 + payload];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        source.GetAddressBytes().CopyTo(p, 12);
        destination.Address.GetAddressBytes().CopyTo(p, 16);
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        var t = p.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], (ushort)destination.Port);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], 0x20000000);
        t[12] = 8 << 4;
        t[13] = 0x10;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 502);
        t[20] = 1; t[21] = 1; t[22] = 8; t[23] = 10;
        for (int i = 0; i < payload; i++) p[52 + i] = (byte)(i + seq);
        Checksum.WriteL4Checksum(p, 4, 6, 20, 16);
        return p;
    }
}
