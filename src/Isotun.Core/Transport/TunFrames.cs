using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;

namespace Isotun.Transport;

/// <summary>What became of a packet read from a TUN.</summary>
public readonly record struct TunSendResult(int Queued, int QueueFull, bool Malformed, int Oversize = 0, int OverBudget = 0, int Closed = 0);

/// <summary>
/// Moves packets between a TUN (plain, or with virtio-net headers and TSO) and a peer (stock CSTP, or an
/// Isotun peer that negotiated GSO): super-packets go whole to GSO peers and are split for the others;
/// peers' packets get the header their TUN needs. Shared by the server and the client.
/// </summary>
public static class TunFrames
{
    /// <summary>
    /// Sends the packet in <paramref name="buffer"/> (read from the TUN into <see cref="PacketBuffer.PayloadSpace"/>,
    /// <paramref name="length"/> bytes, starting with a virtio header when <paramref name="tunOffload"/>).
    /// On return the buffer belongs to the writer when <paramref name="consumed"/>, else to the caller.
    /// <paramref name="enqueue"/> is the writer's <see cref="FrameWriter.Offer"/> (server: drop when full or over
    /// budget) or a waiting variant (client).
    /// A GSO peer gets UDP super-packets whole only with <paramref name="peerUso"/>; otherwise they are cut.
    /// </summary>
    public static TunSendResult Send(PacketBuffer buffer, int length, bool tunOffload, bool peerGso, bool peerUso, int mtu, Func<PacketBuffer, EnqueueResult> enqueue, out bool consumed)
    {
        consumed = false;
        var space = buffer.PayloadSpace;
        if (!tunOffload)
        {
            Clamp(space[..length], mtu, partial: false);
            return Frame(buffer, 0, CstpPacketType.Data, length, enqueue, out consumed);
        }
        if (length < VirtioNetHeader.Length) return new TunSendResult(0, 0, true);
        var header = VirtioNetHeader.Read(space);
        var packet = space[VirtioNetHeader.Length..length];
        if (peerGso && (peerUso || !GsoPacket.IsUdp(header)))
        {
            if (!header.IsGso) Clamp(packet, mtu, partial: header.NeedsChecksum);
            return Frame(buffer, 0, CstpPacketType.IsotunGso, length, enqueue, out consumed);
        }
        // A stock peer takes nothing above its MTU (it may have asked for less than the TUN's).
        if (!header.IsGso && packet.Length > mtu) return new TunSendResult(0, 0, false, 1);
        if (!header.IsGso && !header.NeedsChecksum)
        {
            Clamp(packet, mtu, partial: false);
            return Frame(buffer, VirtioNetHeader.Length, CstpPacketType.Data, packet.Length, enqueue, out consumed);
        }
        // A stock peer (or a UDP super-packet for a peer without USO): finish the checksum, and cut super-packets
        // into MTU-sized segments. Our own kernel made the packet, so USO is allowed here.
        if (GsoPacket.Validate(ref header, packet, mtu, allowUdp: true) != GsoCheckResult.Ok) return new TunSendResult(0, 0, true);
        int count = GsoPacket.SegmentCount(header, packet.Length), queued = 0, full = 0, overBudget = 0, closed = 0;
        for (int i = 0; i < count; i++)
        {
            var segment = PacketBuffer.Rent(header.IsGso ? header.HeaderLength + header.GsoSize : packet.Length);
            int n = GsoPacket.WriteSegment(packet, header, i, segment.PayloadSpace);
            Clamp(segment.PayloadSpace[..n], mtu, partial: false);
            switch (enqueue(segment.Seal(CstpPacketType.Data, n)))
            {
                case EnqueueResult.Queued: queued++; break;
                case EnqueueResult.OverBudget: segment.Return(); overBudget++; break;
                case EnqueueResult.Closed: segment.Return(); closed++; break;
                default: segment.Return(); full++; break;
            }
        }
        return new TunSendResult(queued, full, false, OverBudget: overBudget, Closed: closed);
    }

    /// <summary>
    /// Offers one frame whose payload is at <paramref name="skip"/> in the buffer's payload space. A payload that fits
    /// a small buffer is copied out of a large one (an offload TUN's 64 KiB read buffer, which its reader then keeps
    /// for the next read): queued for a slow peer it pins 2 KiB rather than 64 (see <see cref="MemoryBudget"/>). The
    /// copy is at most 2 KiB, small beside the TLS record the frame becomes.
    /// </summary>
    private static TunSendResult Frame(PacketBuffer buffer, int skip, CstpPacketType type, int payloadLength, Func<PacketBuffer, EnqueueResult> enqueue, out bool consumed)
    {
        if (buffer.Array.Length <= CstpFrame.HeaderLength + PacketBuffer.SmallPayload || payloadLength > PacketBuffer.SmallPayload)
            return One(enqueue(buffer.SealAt(skip, type, payloadLength)), out consumed);
        var small = PacketBuffer.Rent(payloadLength);
        buffer.PayloadSpace.Slice(skip, payloadLength).CopyTo(small.PayloadSpace);
        var result = One(enqueue(small.Seal(type, payloadLength)), out bool queued);
        if (!queued) small.Return();
        consumed = false; // the large buffer stays with the caller
        return result;
    }

    private static TunSendResult One(EnqueueResult result, out bool consumed)
    {
        consumed = result == EnqueueResult.Queued;
        return result switch
        {
            EnqueueResult.Queued => new TunSendResult(1, 0, false),
            EnqueueResult.OverBudget => new TunSendResult(0, 0, false, OverBudget: 1),
            EnqueueResult.Closed => new TunSendResult(0, 0, false, Closed: 1),
            _ => new TunSendResult(0, 1, false),
        };
    }

    private static void Clamp(Span<byte> packet, int mtu, bool partial)
    {
        if (IpPacket.TryParse(packet, out var info) == IpParseResult.Ok && info.Protocol == 6)
            MssClamp.TryClamp(packet, MssClamp.MssForMtu(mtu, info.Version), partial);
    }
}
