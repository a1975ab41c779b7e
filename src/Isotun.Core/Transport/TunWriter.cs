using Isotun.Protocol.Offload;
using Isotun.Tun;

namespace Isotun.Transport;

/// <summary>
/// Writes peer packets into a TUN. On a TUN with offloads, consecutive segments of a TCP flow are merged
/// (<see cref="TcpCoalescer"/>) and written as one super-packet; the caller flushes at the end of each burst
/// of frames it had buffered, so nothing waits for more data to arrive.
/// </summary>
public sealed class TunWriter(ITunQueue tun)
{
    // Made on the first packet: an idle session holds no 64 KiB merge buffer.
    private TcpCoalescer? _gro;
    // For cutting UDP super-packets when the TUN has no USO; made on the first one.
    private byte[]? _segment;

    /// <summary>Packets written to the TUN, counting merged segments once per write.</summary>
    public long Writes;

    /// <summary>
    /// Writes <paramref name="framed"/> (virtio header + packet on an offload TUN, the bare packet otherwise).
    /// With <paramref name="mayCoalesce"/> (a plain packet with an empty header) it may be held to merge with
    /// the next one. False when the kernel refused a write.
    /// </summary>
    public bool Write(ReadOnlyMemory<byte> framed, bool mayCoalesce)
    {
        if (!tun.Offload) return Put(framed);
        _gro ??= new TcpCoalescer(ITunQueue.GsoMaxSize);
        var packet = framed.Span[VirtioNetHeader.Length..];
        if (mayCoalesce && _gro.TryAppend(packet)) return true;
        bool ok = Flush();
        if (mayCoalesce && _gro.TryStart(packet)) return ok;
        if (!tun.Uso && framed.Span[1] == VirtioNetHeader.GsoUdpL4) return PutDatagrams(framed.Span) && ok;
        return Put(framed) && ok;
    }

    /// <summary>
    /// A validated UDP super-packet for a TUN without USO (a kernel before 6.2): written as the datagrams the
    /// kernel would have cut, each with an empty header and a full checksum.
    /// </summary>
    private bool PutDatagrams(ReadOnlySpan<byte> framed)
    {
        var header = VirtioNetHeader.Read(framed);
        var packet = framed[VirtioNetHeader.Length..];
        // A datagram is headers + gso_size, which validation held to the MTU: at most 9000 on a server, but a client
        // takes the MTU its server gives (up to 64 KiB), so the buffer grows to the largest datagram seen.
        int largest = VirtioNetHeader.Length + header.HeaderLength + header.GsoSize;
        if (_segment is null || _segment.Length < largest) _segment = new byte[Math.Max(largest, VirtioNetHeader.Length + 9216)];
        new VirtioNetHeader().Write(_segment);
        bool ok = true;
        for (int i = 0, count = GsoPacket.SegmentCount(header, packet.Length); i < count; i++)
        {
            int n = GsoPacket.WriteSegment(packet, header, i, _segment.AsSpan(VirtioNetHeader.Length));
            ok &= Put(_segment.AsMemory(0, VirtioNetHeader.Length + n));
        }
        return ok;
    }

    /// <summary>Gives up the merge and cutting buffers while nothing is pending (an idle session holds neither); they
    /// are made again by the next packet that needs them.</summary>
    public void Trim()
    {
        if (_gro is { HasPending: false }) _gro = null;
        _segment = null;
    }

    /// <summary>Writes the pending merged packet, if any. Call at the end of every burst and before anything else goes out.</summary>
    public bool Flush() => _gro is not { HasPending: true } || Put(_gro.Flush());

    /// <summary>One packet as a batch of one: the span over a local makes no allocation.</summary>
    private bool Put(ReadOnlyMemory<byte> framed)
    {
        Writes++;
        return tun.Write(new ReadOnlySpan<ReadOnlyMemory<byte>>(in framed), 0) == 1;
    }
}
