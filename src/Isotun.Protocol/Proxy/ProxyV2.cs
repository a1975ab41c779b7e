namespace Isotun.Protocol.Proxy;

/// <summary>PROXY protocol version 2 constants (haproxy doc/proxy-protocol.txt §2.2).</summary>
public static class ProxyV2
{
    /// <summary>Signature (12) + version/command (1) + family/transport (1) + length (2).</summary>
    public const int PrefixLength = 16;

    /// <summary>The largest header the format can express.</summary>
    public const int MaxLength = PrefixLength + ushort.MaxValue;

    /// <summary>Default bound for parsers: generous for real TLVs, small enough to refuse abuse early.</summary>
    public const int DefaultMaxLength = 4096;

    public static ReadOnlySpan<byte> Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    public const byte TypeAlpn = 0x01;
    public const byte TypeAuthority = 0x02;
    public const byte TypeCrc32C = 0x03;
    public const byte TypeNoop = 0x04;
    public const byte TypeUniqueId = 0x05;
    public const byte TypeSsl = 0x20;
    public const byte SubtypeSslVersion = 0x21;
    public const byte SubtypeSslCn = 0x22;
    public const byte SubtypeSslCipher = 0x23;
    public const byte SubtypeSslSigAlg = 0x24;
    public const byte SubtypeSslKeyAlg = 0x25;
    public const byte TypeNetNs = 0x30;

    /// <summary>
    /// Isotun's own TLV, in the range the specification leaves to applications (PP2_TYPE_MIN_CUSTOM 0xE0): the client's
    /// certificate in DER, as a terminating gateway received it. The server checks it against the chosen tenant's CA
    /// and OUs itself, so a gateway that trusts one CA for several tenants cannot carry one tenant's user into another.
    /// </summary>
    public const byte TypeClientCertificate = 0xE0;

    /// <summary>A client certificate in <see cref="TypeClientCertificate"/> is at most this long (DER bytes).</summary>
    public const int MaxClientCertificateLength = 4096;

    internal const byte FamilyUnspec = 0x0;
    internal const byte FamilyInet = 0x1;
    internal const byte FamilyInet6 = 0x2;
    internal const byte FamilyUnix = 0x3;
    internal const byte TransportStream = 0x1;
    internal const int Inet4AddressLength = 12;
    internal const int Inet6AddressLength = 36;
    internal const int UnixAddressLength = 216;

    /// <summary>PP2_TYPE_AUTHORITY and the SSL strings are host names and short labels; longer values are refused.</summary>
    public const int MaxStringLength = 255;

    /// <summary>PP2_TYPE_UNIQUE_ID is at most 128 bytes.</summary>
    public const int MaxUniqueIdLength = 128;
}
