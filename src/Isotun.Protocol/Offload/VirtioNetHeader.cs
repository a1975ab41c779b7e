using System.Buffers.Binary;

namespace Isotun.Protocol.Offload;

/// <summary>
/// struct virtio_net_hdr (10 bytes) as a TUN opened with IFF_VNET_HDR reads and writes it. On the wire
/// between Isotun peers it travels little-endian, in front of the packet, in an extension frame.
/// </summary>
public struct VirtioNetHeader
{
    public const int Length = 10;
    public const byte FlagNeedsChecksum = 1;
    public const byte FlagDataValid = 2;
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    public byte Flags;
    public byte GsoType;
    public ushort HeaderLength;
    public ushort GsoSize;
    public ushort ChecksumStart;
    public ushort ChecksumOffset;

    public readonly bool NeedsChecksum => (Flags & FlagNeedsChecksum) != 0;
    public readonly bool IsGso => GsoType != GsoNone;

    public static VirtioNetHeader Read(ReadOnlySpan<byte> source) => new()
    {
        Flags = source[0],
        GsoType = source[1],
        HeaderLength = BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        ChecksumStart = BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        ChecksumOffset = BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
    };

    public readonly void Write(Span<byte> destination)
    {
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], ChecksumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], ChecksumOffset);
    }
}
