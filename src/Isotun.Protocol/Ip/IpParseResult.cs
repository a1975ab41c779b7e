namespace Isotun.Protocol.Ip;

/// <summary>Outcome of <see cref="IpPacket.TryParse"/>.</summary>
public enum IpParseResult
{
    /// <summary>A plausible IPv4 or IPv6 header.</summary>
    Ok,

    /// <summary>Shorter than the fixed header (20 bytes for IPv4, 40 for IPv6, or the IHL-declared length).</summary>
    TooShort,

    /// <summary>Version nibble is neither 4 nor 6.</summary>
    BadVersion,

    /// <summary>IPv4 IHL below 5.</summary>
    BadHeaderLength,

    /// <summary>The declared total length is smaller than the header or larger than the buffer.</summary>
    BadTotalLength,
}
