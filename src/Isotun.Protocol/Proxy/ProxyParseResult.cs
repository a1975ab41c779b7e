namespace Isotun.Protocol.Proxy;

/// <summary>Outcome of <see cref="ProxyV2Parser"/>; every value but <see cref="Ok"/> and <see cref="NeedMore"/> means "close the connection".</summary>
public enum ProxyParseResult
{
    Ok,

    /// <summary>Not enough bytes yet (the signature so far matches).</summary>
    NeedMore,

    /// <summary>The bytes do not start with the PROXY v2 signature.</summary>
    NotProxy,

    /// <summary>Version nibble is not 2.</summary>
    BadVersion,

    /// <summary>Command nibble is neither LOCAL (0) nor PROXY (1).</summary>
    BadCommand,

    /// <summary>Unknown family or transport, or the length is too short for the address block.</summary>
    BadAddress,

    /// <summary>A TLV overruns the header, is a duplicate, or carries an invalid value.</summary>
    BadTlv,

    /// <summary>The declared length exceeds the caller's bound.</summary>
    TooLarge,

    /// <summary>A CRC32C TLV is present and does not match the header.</summary>
    BadChecksum,
}
