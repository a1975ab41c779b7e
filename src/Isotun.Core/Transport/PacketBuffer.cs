using System.Buffers;
using Isotun.Protocol.Cstp;

namespace Isotun.Transport;

/// <summary>
/// A pooled buffer holding one CSTP frame: the packet is read at offset <see cref="CstpFrame.HeaderLength"/>
/// so the frame header can be written in front of it without a copy.
/// </summary>
public sealed class PacketBuffer
{
    /// <summary>Largest frame: header plus a 64 KiB payload.</summary>
    public const int Capacity = CstpFrame.HeaderLength + 65535;

    /// <summary>Payload room of a small buffer: any packet of a TUN whose MTU is at most this.</summary>
    public const int SmallPayload = 2048;

    private static readonly ConcurrentPool s_small = new(SmallPayload);
    private static readonly ConcurrentPool s_large = new(65535);
    private readonly ConcurrentPool _owner;

    private PacketBuffer(ConcurrentPool owner, int payloadCapacity)
    {
        _owner = owner;
        Array = GC.AllocateUninitializedArray<byte>(CstpFrame.HeaderLength + payloadCapacity, pinned: true);
    }

    public byte[] Array { get; }

    /// <summary>Length of the whole frame (header + payload).</summary>
    public int FrameLength { get; private set; }

    /// <summary>Where the frame starts in <see cref="Array"/>: 0, or later when a virtio header in front was skipped.</summary>
    public int FrameStart { get; private set; }

    public Span<byte> PayloadSpace => Array.AsSpan(CstpFrame.HeaderLength);

    public Span<byte> Payload => Array.AsSpan(FrameStart + CstpFrame.HeaderLength, FrameLength - CstpFrame.HeaderLength);

    public ReadOnlyMemory<byte> Frame => Array.AsMemory(FrameStart, FrameLength);

    /// <summary>A buffer with room for a payload of <paramref name="payloadCapacity"/> bytes.</summary>
    public static PacketBuffer Rent(int payloadCapacity = SmallPayload) =>
        payloadCapacity <= SmallPayload ? s_small.Rent() : s_large.Rent();

    public void Return() => _owner.Return(this);

    /// <summary>Seals the frame: writes the header for a payload already placed in <see cref="PayloadSpace"/>.</summary>
    public PacketBuffer Seal(CstpPacketType type, int payloadLength) => SealAt(0, type, payloadLength);

    /// <summary>
    /// Seals a frame whose payload starts <paramref name="skip"/> bytes into <see cref="PayloadSpace"/>: the
    /// frame header is written just before it (over bytes no longer needed, e.g. a virtio header).
    /// </summary>
    public PacketBuffer SealAt(int skip, CstpPacketType type, int payloadLength)
    {
        FrameStart = skip;
        CstpFrame.WriteHeader(Array.AsSpan(skip), type, payloadLength);
        FrameLength = CstpFrame.HeaderLength + payloadLength;
        return this;
    }

    public static PacketBuffer Control(CstpPacketType type, ReadOnlySpan<byte> payload)
    {
        var b = Rent(payload.Length);
        payload.CopyTo(b.PayloadSpace);
        return b.Seal(type, payload.Length);
    }

    /// <summary>
    /// The answer to a DPD-REQ: its payload echoed, as ocserv does, when it fits a small buffer, and none otherwise. The
    /// peer picks the request's size (up to a whole record); echoing a large one would let it make us pin a 64 KiB
    /// buffer per 2 KiB it sends.
    /// </summary>
    public static PacketBuffer DpdResponse(ReadOnlySpan<byte> request) =>
        Control(CstpPacketType.DpdResponse, request.Length <= SmallPayload ? request : []);

    /// <summary>A bounded free list of pinned buffers of one size; extras are left to the GC.</summary>
    private sealed class ConcurrentPool(int payloadCapacity)
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<PacketBuffer> _free = new();
        private int _count;
        private const int MaxFree = 4096;

        public PacketBuffer Rent()
        {
            if (_free.TryTake(out var b)) { Interlocked.Decrement(ref _count); return b; }
            return new PacketBuffer(this, payloadCapacity);
        }

        public void Return(PacketBuffer b)
        {
            if (Interlocked.Increment(ref _count) <= MaxFree) _free.Add(b);
            else Interlocked.Decrement(ref _count);
        }
    }
}
