using System.Buffers.Binary;

namespace Isotun.Protocol.Ip;

/// <summary>
/// Picks a queue for a packet so that every packet of one flow takes the same one: TCP and UDP by addresses,
/// protocol and ports; anything else (and IPv4 fragments, which carry no ports after the first) by addresses and
/// protocol. Symmetric, so both directions of a flow hash alike. Allocation-free; the packet is already parsed.
/// </summary>
public static class FlowHash
{
    public static uint Of(ReadOnlySpan<byte> packet, in IpPacketInfo info)
    {
        var src = IpPacket.Source(packet, info);
        var dst = IpPacket.Destination(packet, info);
        uint h = Mix(0x5bd1e995u, info.Protocol);
        for (int i = 0; i < src.Length; i += 4)
            h = Mix(h, BinaryPrimitives.ReadUInt32BigEndian(src[i..]) ^ BinaryPrimitives.ReadUInt32BigEndian(dst[i..]));
        bool fragment = info.Version == 4 && (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0;
        if (info.Protocol is 6 or 17 && !fragment && info.HeaderLength + 4 <= info.TotalLength)
        {
            var ports = packet[info.HeaderLength..];
            h = Mix(h, (uint)(BinaryPrimitives.ReadUInt16BigEndian(ports) ^ BinaryPrimitives.ReadUInt16BigEndian(ports[2..])));
        }
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        return h;
    }

    /// <summary>Which of <paramref name="count"/> queues the hash falls in (a multiply, not a division).</summary>
    public static int Pick(uint hash, int count) => (int)(((ulong)hash * (uint)count) >> 32);

    private static uint Mix(uint h, uint value)
    {
        h ^= value;
        h *= 0x9e3779b1u;
        return h ^ (h >> 15);
    }
}
