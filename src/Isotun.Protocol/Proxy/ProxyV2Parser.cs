using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Unicode;

namespace Isotun.Protocol.Proxy;

/// <summary>
/// Parses PROXY v2 headers strictly and within a caller's bound. Never throws on peer input. A listener that must not
/// read past the header reads <see cref="ProxyV2.PrefixLength"/> bytes, asks <see cref="TryReadLength"/> for the total,
/// reads the rest, then calls <see cref="TryParse"/>.
/// </summary>
public static class ProxyV2Parser
{
    /// <summary>From the first bytes alone: NeedMore, NotProxy, BadVersion, BadCommand, TooLarge, or Ok with the total header length.</summary>
    public static ProxyParseResult TryReadLength(ReadOnlySpan<byte> buffer, int maxLength, out int totalLength)
    {
        totalLength = 0;
        var signature = ProxyV2.Signature;
        int n = Math.Min(buffer.Length, signature.Length);
        if (!buffer[..n].SequenceEqual(signature[..n])) return ProxyParseResult.NotProxy;
        if (buffer.Length < ProxyV2.PrefixLength) return ProxyParseResult.NeedMore;
        if (buffer[12] >> 4 != 2) return ProxyParseResult.BadVersion;
        if ((buffer[12] & 0x0F) > 1) return ProxyParseResult.BadCommand;
        totalLength = ProxyV2.PrefixLength + BinaryPrimitives.ReadUInt16BigEndian(buffer[14..]);
        if (totalLength > maxLength)
        {
            totalLength = 0;
            return ProxyParseResult.TooLarge;
        }

        return ProxyParseResult.Ok;
    }

    /// <summary>Parses one header at the start of <paramref name="buffer"/>; <paramref name="consumed"/> is its length.</summary>
    public static ProxyParseResult TryParse(ReadOnlySpan<byte> buffer, int maxLength, out ProxyHeader? header, out int consumed)
    {
        header = null;
        consumed = 0;
        var result = TryReadLength(buffer, maxLength, out int total);
        if (result != ProxyParseResult.Ok) return result;
        if (buffer.Length < total) return ProxyParseResult.NeedMore;

        var command = (ProxyCommand)(buffer[12] & 0x0F);
        int family = buffer[13] >> 4;
        int transport = buffer[13] & 0x0F;
        if (family > ProxyV2.FamilyUnix || transport > 2) return ProxyParseResult.BadAddress;

        var whole = buffer[..total];
        var body = whole[ProxyV2.PrefixLength..];
        int addressLength = family switch
        {
            ProxyV2.FamilyInet => ProxyV2.Inet4AddressLength,
            ProxyV2.FamilyInet6 => ProxyV2.Inet6AddressLength,
            ProxyV2.FamilyUnix => ProxyV2.UnixAddressLength,
            _ => 0,
        };
        if (body.Length < addressLength) return ProxyParseResult.BadAddress;

        IPEndPoint? source = null, destination = null;
        if (command == ProxyCommand.Proxy && family is ProxyV2.FamilyInet or ProxyV2.FamilyInet6)
        {
            int size = family == ProxyV2.FamilyInet ? 4 : 16;
            source = new IPEndPoint(new IPAddress(body[..size]), BinaryPrimitives.ReadUInt16BigEndian(body[(2 * size)..]));
            destination = new IPEndPoint(new IPAddress(body.Slice(size, size)), BinaryPrimitives.ReadUInt16BigEndian(body[(2 * size + 2)..]));
        }

        var tlvResult = ParseTlvs(whole, ProxyV2.PrefixLength + addressLength, out var tlvs);
        if (tlvResult != ProxyParseResult.Ok) return tlvResult;

        header = new ProxyHeader(command, source, destination, tlvs.Authority, tlvs.Ssl, tlvs.Alpn, tlvs.UniqueId, tlvs.ClientCertificate);
        consumed = total;
        return ProxyParseResult.Ok;
    }

    private struct Tlvs
    {
        public string? Authority;
        public string? Alpn;
        public byte[]? UniqueId;
        public ProxySslInfo? Ssl;
        public byte[]? ClientCertificate;
    }

    private static ProxyParseResult ParseTlvs(ReadOnlySpan<byte> whole, int offset, out Tlvs tlvs)
    {
        tlvs = default;
        uint seen = 0; // bit per known type, to refuse duplicates
        var rest = whole[offset..];
        while (rest.Length > 0)
        {
            if (rest.Length < 3) return ProxyParseResult.BadTlv;
            byte type = rest[0];
            int length = BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
            if (rest.Length < 3 + length) return ProxyParseResult.BadTlv;
            var value = rest.Slice(3, length);
            int valueOffset = whole.Length - rest.Length + 3;
            rest = rest[(3 + length)..];

            int bit = type switch
            {
                ProxyV2.TypeAlpn => 0,
                ProxyV2.TypeAuthority => 1,
                ProxyV2.TypeCrc32C => 2,
                ProxyV2.TypeUniqueId => 3,
                ProxyV2.TypeSsl => 4,
                ProxyV2.TypeNetNs => 5,
                ProxyV2.TypeClientCertificate => 6,
                _ => -1,
            };
            if (bit >= 0)
            {
                if ((seen & (1u << bit)) != 0) return ProxyParseResult.BadTlv;
                seen |= 1u << bit;
            }

            switch (type)
            {
                case ProxyV2.TypeAlpn:
                    if (!TryString(value, out tlvs.Alpn)) return ProxyParseResult.BadTlv;
                    break;
                case ProxyV2.TypeAuthority:
                    if (!TryString(value, out tlvs.Authority)) return ProxyParseResult.BadTlv;
                    break;
                case ProxyV2.TypeUniqueId:
                    if (length > ProxyV2.MaxUniqueIdLength) return ProxyParseResult.BadTlv;
                    tlvs.UniqueId = value.ToArray();
                    break;
                case ProxyV2.TypeCrc32C:
                    if (length != 4) return ProxyParseResult.BadTlv;
                    if (!ChecksumMatches(whole, valueOffset, BinaryPrimitives.ReadUInt32BigEndian(value))) return ProxyParseResult.BadChecksum;
                    break;
                case ProxyV2.TypeSsl:
                    var ssl = ParseSsl(value);
                    if (ssl is null) return ProxyParseResult.BadTlv;
                    tlvs.Ssl = ssl;
                    break;
                case ProxyV2.TypeClientCertificate:
                    if (length is 0 or > ProxyV2.MaxClientCertificateLength) return ProxyParseResult.BadTlv;
                    tlvs.ClientCertificate = value.ToArray();
                    break;
                default:
                    break; // NOOP, NETNS and unknown types are skipped, as the specification asks
            }
        }

        return ProxyParseResult.Ok;
    }

    private static ProxySslInfo? ParseSsl(ReadOnlySpan<byte> value)
    {
        if (value.Length < 5) return null;
        var client = (ProxyClientFlags)value[0];
        if (((byte)client & ~0x07) != 0) return null;
        uint verify = BinaryPrimitives.ReadUInt32BigEndian(value[1..]);
        string? version = null, cn = null, cipher = null;
        var rest = value[5..];
        uint seen = 0;
        while (rest.Length > 0)
        {
            if (rest.Length < 3) return null;
            byte type = rest[0];
            int length = BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
            if (rest.Length < 3 + length) return null;
            var sub = rest.Slice(3, length);
            rest = rest[(3 + length)..];
            if (type is >= ProxyV2.SubtypeSslVersion and <= ProxyV2.SubtypeSslKeyAlg)
            {
                uint bit = 1u << (type - ProxyV2.SubtypeSslVersion);
                if ((seen & bit) != 0) return null;
                seen |= bit;
            }

            switch (type)
            {
                case ProxyV2.SubtypeSslVersion:
                    if (!TryString(sub, out version)) return null;
                    break;
                case ProxyV2.SubtypeSslCn:
                    if (!TryString(sub, out cn)) return null;
                    break;
                case ProxyV2.SubtypeSslCipher:
                    if (!TryString(sub, out cipher)) return null;
                    break;
                default:
                    break;
            }
        }

        return new ProxySslInfo(client, verify, version, cn, cipher);
    }

    private static bool TryString(ReadOnlySpan<byte> value, out string? text)
    {
        text = null;
        if (value.Length is 0 or > ProxyV2.MaxStringLength || !Utf8.IsValid(value)) return false;
        foreach (byte b in value)
        {
            if (b < 0x20 || b == 0x7F) return false; // no control characters: these values end up in logs
        }

        text = Encoding.UTF8.GetString(value);
        return true;
    }

    private static bool ChecksumMatches(ReadOnlySpan<byte> whole, int valueOffset, uint expected)
    {
        uint crc = Crc32C.Update(0xFFFFFFFF, whole[..valueOffset]);
        crc = Crc32C.Update(crc, [0, 0, 0, 0]);
        crc = Crc32C.Update(crc, whole[(valueOffset + 4)..]);
        return ~crc == expected;
    }
}
