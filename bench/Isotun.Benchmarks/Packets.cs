using System.Buffers.Binary;
using Isotun.Protocol.Offload;

namespace Isotun.Benchmarks;

/// <summary>Realistic inputs: a bulk TCP flow's segments (IPv4, timestamps), a SYN, and a super-packet made of them.</summary>
internal static class Packets
{
    public const int Mtu = 1400;
    public const int Mss = 1348; // 1400 - 20 (IPv4) - 32 (TCP with timestamps)

    /// <summary>One ACK segment of a bulk flow with <paramref name="payload"/> bytes, all checksums valid.</summary>
    public static byte[] Segment(uint seq, int payload, ushort ipId, byte flags = 0x10)
    {
        var p = new byte[52 + payload];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), ipId);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12] = 10; p[13] = 10; p[14] = 0; p[15] = 2;          // 10.10.0.2
        p[16] = 198; p[17] = 18; p[18] = 21; p[19] = 2;        // 198.18.21.2
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        var t = p.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], 9000);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], 0x20000000);
        t[12] = 8 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 502);
        t[20] = 1; t[21] = 1; t[22] = 8; t[23] = 10;           // NOP NOP timestamps
        for (int i = 0; i < payload; i++) p[52 + i] = (byte)(i * 7 + seq);
        Checksum.WriteL4Checksum(p, 4, 6, 20, 16);
        return p;
    }

    /// <summary>A run of full segments of one flow, as a peer without GSO sends them.</summary>
    public static byte[][] Run(int count) =>
        Enumerable.Range(0, count).Select(i => Segment(0x10000000u + (uint)(i * Mss), Mss, (ushort)(100 + i))).ToArray();

    /// <summary>virtio header + TCP super-packet of <paramref name="segments"/> MSS-sized segments, as a TUN with TSO reads it.</summary>
    public static byte[] SuperPacket(int segments)
    {
        var gro = new TcpCoalescer();
        var run = Run(segments);
        gro.TryStart(run[0]);
        for (int i = 1; i < run.Length; i++) gro.TryAppend(run[i]);
        return gro.Flush().ToArray();
    }

    /// <summary>virtio header + UDP super-packet of <paramref name="datagrams"/> datagrams of 1372 bytes, as a TUN with USO reads it.</summary>
    public static byte[] UdpSuperPacket(int datagrams)
    {
        const int size = 1372;
        var framed = new byte[VirtioNetHeader.Length + 28 + datagrams * size];
        new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsChecksum, GsoType = VirtioNetHeader.GsoUdpL4, HeaderLength = 28,
            GsoSize = size, ChecksumStart = 20, ChecksumOffset = 6,
        }.Write(framed);
        var p = framed.AsSpan(VirtioNetHeader.Length);
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)p.Length);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 17;
        p[12] = 10; p[13] = 10; p[14] = 0; p[15] = 2;
        p[16] = 198; p[17] = 18; p[18] = 21; p[19] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(p[20..], 40000);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], 443);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], (ushort)(p.Length - 20));
        for (int i = 28; i < p.Length; i++) p[i] = (byte)(i * 13);
        return framed;
    }

    /// <summary>An IPv4 SYN with Linux's options and MSS 1460 (clamped to 1360 for a 1400 MTU).</summary>
    public static byte[] Syn()
    {
        var p = new byte[60];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), 60);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12] = 10; p[13] = 10; p[14] = 0; p[15] = 2;
        p[16] = 198; p[17] = 18; p[18] = 21; p[19] = 2;
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        var t = p.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], 9000);
        t[12] = 10 << 4;
        t[13] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 64240);
        byte[] options = [0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 1, 2, 3, 4, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07];
        options.CopyTo(t[20..]);
        Checksum.WriteL4Checksum(p, 4, 6, 20, 16);
        return p;
    }

    public static byte[] Ipv6Segment()
    {
        var p = new byte[40 + 32 + 1328];
        p[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)(p.Length - 40));
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd; p[23] = 2;
        p[24] = 0x20; p[25] = 0x01; p[27] = 0x01; p[39] = 0x80; // 2001:1::80, in the route table
        p[40 + 12] = 8 << 4;
        p[40 + 13] = 0x10;
        return p;
    }
}
