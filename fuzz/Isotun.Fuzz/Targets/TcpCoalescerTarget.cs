using System.Buffers.Binary;
using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// A burst of packets from the peer, as the TUN writer merges them (user-space GRO). The input is a sequence of
/// records, each a big-endian u16 length and that many bytes of packet. Every flushed super-packet passes the same
/// validation a peer's GSO frame must pass, and cut again it gives back each merged segment's sequence number and
/// payload.
/// </summary>
public sealed class TcpCoalescerTarget : IFuzzTarget
{
    // Small, so short inputs reach the size bound too.
    private const int MaxPacket = 4000;

    public string Name => "coalesce";

    public string Description => "TCP segment merging (TcpCoalescer) over length-prefixed packets, checked by GsoPacket";

    public void Run(ReadOnlySpan<byte> input)
    {
        var coalescer = new TcpCoalescer(MaxPacket);
        var merged = new List<byte[]>();
        var rest = input;
        while (rest.Length >= 2)
        {
            int length = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(rest), rest.Length - 2);
            var packet = rest.Slice(2, length);
            rest = rest[(2 + length)..];

            if (coalescer.TryAppend(packet))
            {
                Invariant.That(merged.Count > 0);
                merged.Add(packet.ToArray());
                Invariant.That(coalescer.PendingSegments == merged.Count);
                continue;
            }

            if (coalescer.HasPending)
            {
                CheckFlush(coalescer, merged);
            }

            if (coalescer.TryStart(packet))
            {
                merged.Add(packet.ToArray());
                Invariant.That(coalescer.PendingSegments == 1);
            }
        }

        if (coalescer.HasPending)
        {
            CheckFlush(coalescer, merged);
        }
    }

    private static void CheckFlush(TcpCoalescer coalescer, List<byte[]> merged)
    {
        int count = coalescer.PendingSegments;
        Invariant.That(count == merged.Count && count > 0);
        var output = coalescer.Flush().ToArray();
        Invariant.That(!coalescer.HasPending);
        Invariant.That(output.Length > VirtioNetHeader.Length && output.Length <= VirtioNetHeader.Length + MaxPacket);
        var header = VirtioNetHeader.Read(output);
        var packet = output.AsSpan(VirtioNetHeader.Length);
        if (count == 1)
        {
            Invariant.That(!header.IsGso && header.Flags == 0);
            Invariant.That(packet.SequenceEqual(merged[0]));
            merged.Clear();
            return;
        }

        var validated = header;
        Invariant.That(GsoPacket.Validate(ref validated, packet, ushort.MaxValue) == GsoCheckResult.Ok);
        Invariant.That(validated.HeaderLength == header.HeaderLength);
        Invariant.That(GsoPacket.SegmentCount(header, packet.Length) == count);
        var segment = new byte[packet.Length];
        for (int i = 0; i < count; i++)
        {
            int length = GsoPacket.WriteSegment(packet, header, i, segment);
            var original = merged[i];
            IpPacket.TryParse(original, out var ip);
            int tcpHeader = (original[ip.HeaderLength + 12] >> 4) * 4;
            int headers = ip.HeaderLength + tcpHeader;
            Invariant.That(length == original.Length);
            Invariant.That(segment.AsSpan(headers, length - headers).SequenceEqual(original.AsSpan(headers)));
            Invariant.That(segment.AsSpan(ip.HeaderLength + 4, 4).SequenceEqual(original.AsSpan(ip.HeaderLength + 4, 4)));
        }

        merged.Clear();
    }
}
