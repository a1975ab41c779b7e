using System.Buffers.Binary;
using System.Net;
using Isotun.Protocol.Offload;
using Isotun.Tun;
using Isotun.UnitTests.Offload;

namespace Isotun.UnitTests.InProcess;

/// <summary>Packets for the in-process tests: UDP with valid checksums, virtio framing, and taking what a memory TUN got.</summary>
internal static class Packets
{
    /// <summary>Destinations behind the server (documentation ranges: these bytes never leave the process).</summary>
    public static readonly IPAddress Far4 = IPAddress.Parse("192.0.2.10");
    public static readonly IPAddress Far6 = IPAddress.Parse("2001:db8::10");
    private const ushort ProbePort = 9;

    /// <summary>An IPv4 or IPv6 UDP packet (by the addresses' family) with valid checksums.</summary>
    public static byte[] Udp(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        bool v4 = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        int ip = v4 ? 20 : 40;
        var packet = new byte[ip + 8 + payload.Length];
        if (v4)
        {
            packet[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(6), 0x4000);
            packet[8] = 64;
            packet[9] = 17;
            source.TryWriteBytes(packet.AsSpan(12), out _);
            destination.TryWriteBytes(packet.AsSpan(16), out _);
            uint sum = 0;
            for (int i = 0; i < 20; i += 2) sum += (uint)(packet[i] << 8 | packet[i + 1]);
            while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), (ushort)~sum);
        }
        else
        {
            packet[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(packet.Length - 40));
            packet[6] = 17;
            packet[7] = 64;
            source.TryWriteBytes(packet.AsSpan(8), out _);
            destination.TryWriteBytes(packet.AsSpan(24), out _);
        }
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip), sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 2), destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 4), (ushort)(8 + payload.Length));
        payload.CopyTo(packet.AsSpan(ip + 8));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 6), Segments.PseudoHeaderPartial(packet, ip, 17, packet.Length - ip));
        Segments.CompleteChecksum(packet, ip, 6);
        return packet;
    }

    /// <summary>A UDP super-packet as a TUN with USO reads one: partial checksum, gso_type UDP_L4, <paramref name="gsoSize"/> bytes a datagram.</summary>
    public static byte[] UdpSuperPacket(IPAddress source, IPAddress destination, ReadOnlySpan<byte> payload, int gsoSize)
    {
        var packet = Udp(source, destination, 40000, 5201, payload);
        int ip = packet[0] >> 4 == 4 ? 20 : 40;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ip + 6), Segments.PseudoHeaderPartial(packet, ip, 17, packet.Length - ip));
        return Framed(new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsChecksum, GsoType = VirtioNetHeader.GsoUdpL4, GsoSize = (ushort)gsoSize,
            HeaderLength = (ushort)(ip + 8), ChecksumStart = (ushort)ip, ChecksumOffset = 6,
        }, packet);
    }

    /// <summary>A UDP packet with <paramref name="n"/> in its payload, so a test can tell packets apart and check their order.</summary>
    public static byte[] Numbered(IPAddress source, IPAddress destination, int n, ushort sourcePort = 40000) =>
        Udp(source, destination, sourcePort, 7, BitConverter.GetBytes(n));

    /// <summary>The number a <see cref="Numbered"/> packet carries.</summary>
    public static int Number(byte[] packet) => BitConverter.ToInt32(packet, (packet[0] >> 4 == 4 ? 20 : 40) + 8);

    /// <summary>What the in-process harness sends to learn that a data path is up; the helpers below skip it.</summary>
    public static byte[] Probe(IPAddress source) => Udp(source, Far4, ProbePort, ProbePort, "probe"u8);

    public static bool IsProbe(byte[] packet) =>
        packet.Length >= 28 && packet[0] >> 4 == 4 && packet[9] == 17
        && BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(20)) == ProbePort && BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(22)) == ProbePort;

    /// <summary>The packet as a TUN carries it: behind an empty virtio header when <paramref name="offload"/>.</summary>
    public static byte[] Framed(byte[] packet, bool offload) => offload ? Framed(new VirtioNetHeader(), packet) : packet;

    public static byte[] Framed(VirtioNetHeader header, byte[] packet)
    {
        var framed = new byte[VirtioNetHeader.Length + packet.Length];
        header.Write(framed);
        packet.CopyTo(framed, VirtioNetHeader.Length);
        return framed;
    }

    public static byte[] Unframed(byte[] framed, bool offload) => offload ? framed[VirtioNetHeader.Length..] : framed;

    /// <summary>The next packet written into <paramref name="tun"/> (skipping probes), with its virtio header if it has one.</summary>
    public static byte[] TakeFramed(MemoryTun tun, string because, TimeSpan? within = null)
    {
        var end = DateTime.UtcNow + (within ?? Eventually.Deadline);
        while (true)
        {
            var left = end - DateTime.UtcNow;
            byte[]? packet = null;
            Assert.True(left > TimeSpan.Zero && tun.TryTake(out packet, left), because);
            if (!IsProbe(Unframed(packet!, tun.Offload))) return packet!;
        }
    }

    /// <summary>The next bare IP packet written into <paramref name="tun"/> (skipping probes).</summary>
    public static byte[] Take(MemoryTun tun, string because) => Unframed(TakeFramed(tun, because), tun.Offload);

    /// <summary>
    /// Whether nothing but probes reaches <paramref name="tun"/> for a short while: for packets that must be dropped.
    /// A test that asserts a drop first waits for its counter, so this only catches a packet that went through as well.
    /// </summary>
    public static bool NothingArrives(MemoryTun tun)
    {
        while (tun.TryTake(out var packet, TimeSpan.FromMilliseconds(300)))
            if (!IsProbe(Unframed(packet, tun.Offload))) return false;
        return true;
    }
}
