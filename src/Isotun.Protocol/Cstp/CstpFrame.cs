using System.Buffers.Binary;

namespace Isotun.Protocol.Cstp;

/// <summary>
/// CSTP framing: <c>'S' 'T' 'F' 0x01 | length (u16 BE, header excluded) | type | 0x00</c>, then the payload.
/// Everything here is allocation-free because it runs once per tunnelled packet.
/// </summary>
public static class CstpFrame
{
    /// <summary>Length of the fixed frame header.</summary>
    public const int HeaderLength = 8;

    /// <summary>Largest payload the 16-bit length field can express.</summary>
    public const int MaxPayloadLength = 65535;

    // "STF" + version 1, read as one big-endian word so the check is a single compare.
    private const uint Magic = 0x53544601;

    /// <summary>Writes an 8-byte header. Throws on arguments the caller controls (not peer input).</summary>
    public static void WriteHeader(Span<byte> destination, CstpPacketType type, int payloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLength, MaxPayloadLength);
        if (destination.Length < HeaderLength)
        {
            throw new ArgumentOutOfRangeException(nameof(destination), "Destination is shorter than a CSTP header.");
        }

        BinaryPrimitives.WriteUInt32BigEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)payloadLength);
        destination[6] = (byte)type;
        destination[7] = 0;
    }

    /// <summary>Writes header and payload; returns the total number of bytes written.</summary>
    public static int Write(Span<byte> destination, CstpPacketType type, ReadOnlySpan<byte> payload)
    {
        int total = HeaderLength + payload.Length;
        if (destination.Length < total)
        {
            throw new ArgumentOutOfRangeException(nameof(destination), "Destination is too short for the frame.");
        }

        WriteHeader(destination, type, payload.Length);
        payload.CopyTo(destination[HeaderLength..]);
        return total;
    }

    /// <summary>
    /// Parses the header at the start of <paramref name="buffer"/>. Never throws; the payload itself
    /// need not be present yet (the caller waits for <c>HeaderLength + PayloadLength</c> bytes).
    /// </summary>
    public static CstpParseResult TryParseHeader(ReadOnlySpan<byte> buffer, int maxPayloadLength, out CstpFrameHeader header)
    {
        header = default;
        if (buffer.Length < HeaderLength)
        {
            return CstpParseResult.NeedMore;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(buffer) != Magic)
        {
            return CstpParseResult.BadMagic;
        }

        if (buffer[7] != 0)
        {
            return CstpParseResult.BadReserved;
        }

        var type = (CstpPacketType)buffer[6];
        if (!IsKnownType(type))
        {
            return CstpParseResult.UnknownType;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(buffer[4..]);
        if (length > maxPayloadLength)
        {
            return CstpParseResult.TooLarge;
        }

        header = new CstpFrameHeader(type, length);
        return CstpParseResult.Ok;
    }

    private static bool IsKnownType(CstpPacketType type) => type switch
    {
        CstpPacketType.Data or CstpPacketType.DpdRequest or CstpPacketType.DpdResponse or CstpPacketType.Disconnect
            or CstpPacketType.Keepalive or CstpPacketType.Compressed or CstpPacketType.Terminate or CstpPacketType.IsotunGso => true,
        _ => false,
    };
}
