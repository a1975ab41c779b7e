using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Isotun.Protocol.Proxy;

/// <summary>
/// Writes PROXY v2 headers. Addresses must be of one family (IPv4-mapped IPv6 addresses are written as IPv4);
/// mixed families become AF_UNSPEC with no address block, as the specification allows. Throws only on caller
/// mistakes (a string over <see cref="ProxyV2.MaxStringLength"/> bytes, a destination too small).
/// </summary>
public static class ProxyV2Writer
{
    /// <summary>The exact number of bytes <see cref="Write"/> produces for <paramref name="header"/>.</summary>
    public static int GetLength(ProxyHeader header, bool withChecksum = false)
    {
        ArgumentNullException.ThrowIfNull(header);
        int length = ProxyV2.PrefixLength + AddressLength(header, out _);
        if (header.Alpn is { } alpn) length += 3 + CheckedLength(alpn);
        if (header.Authority is { } authority) length += 3 + CheckedLength(authority);
        if (header.UniqueId is { } id)
        {
            if (id.Length > ProxyV2.MaxUniqueIdLength) throw new ArgumentException("unique id is over 128 bytes", nameof(header));
            length += 3 + id.Length;
        }

        if (header.Ssl is { } ssl) length += 3 + SslValueLength(ssl);
        if (header.ClientCertificate is { } der)
        {
            if (der.Length is 0 or > ProxyV2.MaxClientCertificateLength)
                throw new ArgumentException($"client certificate must be 1-{ProxyV2.MaxClientCertificateLength} bytes", nameof(header));
            length += 3 + der.Length;
        }
        if (withChecksum) length += 3 + 4;
        if (length > ProxyV2.MaxLength) throw new ArgumentException("header too long", nameof(header));
        return length;
    }

    /// <summary>Writes the header to the start of <paramref name="destination"/>; returns the byte count.</summary>
    public static int Write(Span<byte> destination, ProxyHeader header, bool withChecksum = false)
    {
        int total = GetLength(header, withChecksum);
        if (destination.Length < total) throw new ArgumentException("destination too small", nameof(destination));
        var d = destination[..total];
        ProxyV2.Signature.CopyTo(d);
        d[12] = (byte)(0x20 | (byte)header.Command);
        int addressLength = AddressLength(header, out byte family);
        d[13] = (byte)((family << 4) | (family == ProxyV2.FamilyUnspec ? 0 : ProxyV2.TransportStream));
        BinaryPrimitives.WriteUInt16BigEndian(d[14..], (ushort)(total - ProxyV2.PrefixLength));
        int p = ProxyV2.PrefixLength;
        if (family == ProxyV2.FamilyInet || family == ProxyV2.FamilyInet6)
        {
            var src = Normalize(header.Source!.Address);
            var dst = Normalize(header.Destination!.Address);
            int size = family == ProxyV2.FamilyInet ? 4 : 16;
            src.TryWriteBytes(d.Slice(p, size), out _);
            dst.TryWriteBytes(d.Slice(p + size, size), out _);
            BinaryPrimitives.WriteUInt16BigEndian(d[(p + 2 * size)..], (ushort)header.Source.Port);
            BinaryPrimitives.WriteUInt16BigEndian(d[(p + 2 * size + 2)..], (ushort)header.Destination.Port);
            p += addressLength;
        }

        if (header.Alpn is { } alpn) p = WriteStringTlv(d, p, ProxyV2.TypeAlpn, alpn);
        if (header.Authority is { } authority) p = WriteStringTlv(d, p, ProxyV2.TypeAuthority, authority);
        if (header.UniqueId is { } id) p = WriteTlv(d, p, ProxyV2.TypeUniqueId, id);
        if (header.Ssl is { } ssl)
        {
            int valueLength = SslValueLength(ssl);
            d[p] = ProxyV2.TypeSsl;
            BinaryPrimitives.WriteUInt16BigEndian(d[(p + 1)..], (ushort)valueLength);
            p += 3;
            d[p] = (byte)ssl.Client;
            BinaryPrimitives.WriteUInt32BigEndian(d[(p + 1)..], ssl.Verify);
            p += 5;
            if (ssl.Version is { } v) p = WriteStringTlv(d, p, ProxyV2.SubtypeSslVersion, v);
            if (ssl.CommonName is { } cn) p = WriteStringTlv(d, p, ProxyV2.SubtypeSslCn, cn);
            if (ssl.Cipher is { } c) p = WriteStringTlv(d, p, ProxyV2.SubtypeSslCipher, c);
        }

        if (header.ClientCertificate is { } certificate) p = WriteTlv(d, p, ProxyV2.TypeClientCertificate, certificate);

        if (withChecksum)
        {
            d[p] = ProxyV2.TypeCrc32C;
            BinaryPrimitives.WriteUInt16BigEndian(d[(p + 1)..], 4);
            d.Slice(p + 3, 4).Clear();
            BinaryPrimitives.WriteUInt32BigEndian(d[(p + 3)..], Crc32C.Compute(d));
            p += 7;
        }

        return p;
    }

    /// <summary>Convenience: the header as a fresh array.</summary>
    public static byte[] ToArray(ProxyHeader header, bool withChecksum = false)
    {
        var bytes = new byte[GetLength(header, withChecksum)];
        Write(bytes, header, withChecksum);
        return bytes;
    }

    private static int AddressLength(ProxyHeader header, out byte family)
    {
        family = ProxyV2.FamilyUnspec;
        if (header.Command != ProxyCommand.Proxy || header.Source is null || header.Destination is null) return 0;
        var src = Normalize(header.Source.Address);
        var dst = Normalize(header.Destination.Address);
        if (src.AddressFamily != dst.AddressFamily) return 0;
        if (src.AddressFamily == AddressFamily.InterNetwork)
        {
            family = ProxyV2.FamilyInet;
            return ProxyV2.Inet4AddressLength;
        }

        family = ProxyV2.FamilyInet6;
        return ProxyV2.Inet6AddressLength;
    }

    private static IPAddress Normalize(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    private static int SslValueLength(ProxySslInfo ssl)
    {
        int length = 5;
        if (ssl.Version is { } v) length += 3 + CheckedLength(v);
        if (ssl.CommonName is { } cn) length += 3 + CheckedLength(cn);
        if (ssl.Cipher is { } c) length += 3 + CheckedLength(c);
        return length;
    }

    private static int CheckedLength(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        if (n == 0 || n > ProxyV2.MaxStringLength) throw new ArgumentException($"TLV string must be 1-{ProxyV2.MaxStringLength} bytes");
        return n;
    }

    private static int WriteStringTlv(Span<byte> d, int p, byte type, string value)
    {
        int n = Encoding.UTF8.GetBytes(value, d[(p + 3)..]);
        d[p] = type;
        BinaryPrimitives.WriteUInt16BigEndian(d[(p + 1)..], (ushort)n);
        return p + 3 + n;
    }

    private static int WriteTlv(Span<byte> d, int p, byte type, ReadOnlySpan<byte> value)
    {
        d[p] = type;
        BinaryPrimitives.WriteUInt16BigEndian(d[(p + 1)..], (ushort)value.Length);
        value.CopyTo(d[(p + 3)..]);
        return p + 3 + value.Length;
    }
}
