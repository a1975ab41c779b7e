namespace Isotun.Protocol.Cstp;

/// <summary>Outcome of <see cref="CstpFrame.TryParseHeader"/>.</summary>
public enum CstpParseResult
{
    /// <summary>A valid header was parsed.</summary>
    Ok,

    /// <summary>Fewer than <see cref="CstpFrame.HeaderLength"/> bytes are available.</summary>
    NeedMore,

    /// <summary>The first four bytes are not <c>'S' 'T' 'F' 0x01</c>.</summary>
    BadMagic,

    /// <summary>The reserved byte 7 is not zero.</summary>
    BadReserved,

    /// <summary>The type byte is not a known <see cref="CstpPacketType"/>.</summary>
    UnknownType,

    /// <summary>The announced payload length exceeds the caller's limit.</summary>
    TooLarge,
}
