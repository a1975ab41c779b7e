using System.Net;
using Isotun.Protocol.Proxy;

namespace Isotun.UnitTests.Protocol.Proxy;

public class ProxyV2Tests
{
    private const string Sig = "0D0A0D0A000D0A515549540A";

    private static readonly IPEndPoint Client4 = IPEndPoint.Parse("192.0.2.1:56324");
    private static readonly IPEndPoint Server4 = IPEndPoint.Parse("198.51.100.2:443");

    public static TheoryData<string, ProxyHeader, bool> RoundTrips() => new()
    {
        { "ipv4", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4), false },
        { "ipv6", new ProxyHeader(ProxyCommand.Proxy, IPEndPoint.Parse("[2001:db8::1]:40000"), IPEndPoint.Parse("[2001:db8::2]:8443")), false },
        { "local", ProxyHeader.Local(), false },
        { "authority", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, Authority: "vpn.initech.example"), false },
        {
            "ssl, verified cert",
            new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.initech.example",
                new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession, 0, "TLSv1.3", "alice", "TLS_AES_256_GCM_SHA384")),
            false
        },
        { "ssl, no cert", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "a.example", new ProxySslInfo(ProxyClientFlags.Ssl, 0, "TLSv1.2")), false },
        { "ssl, failed verify", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, null, new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 1, "TLSv1.3", "mallory")), false },
        { "alpn and unique id", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, Alpn: "http/1.1", UniqueId: [1, 2, 3, 4]), false },
        {
            "forwarded client certificate",
            new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.initech.example",
                new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0, "TLSv1.3", "alice"), ClientCertificate: [0x30, 0x82, 0x01, 0x0A, 0xAB]),
            true
        },
        { "with crc32c", new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.acme.example", new ProxySslInfo(ProxyClientFlags.Ssl, 0, "TLSv1.3")), true },
    };

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void Write_then_parse_round_trips(string name, ProxyHeader header, bool checksum)
    {
        var bytes = ProxyV2Writer.ToArray(header, checksum);
        Assert.Equal(ProxyV2Writer.GetLength(header, checksum), bytes.Length);
        var extra = bytes.Concat("\x16\x03\x01"u8.ToArray()).ToArray();
        Assert.True(ProxyParseResult.Ok == ProxyV2Parser.TryParse(extra, ProxyV2.DefaultMaxLength, out var parsed, out int consumed), name);
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(header.Command, parsed!.Command);
        Assert.Equal(header.Source, parsed.Source);
        Assert.Equal(header.Destination, parsed.Destination);
        Assert.Equal(header.Authority, parsed.Authority);
        Assert.Equal(header.Ssl, parsed.Ssl);
        Assert.Equal(header.Alpn, parsed.Alpn);
        Assert.Equal(header.UniqueId, parsed.UniqueId);
        Assert.Equal(header.ClientCertificate, parsed.ClientCertificate);
    }

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void Every_prefix_needs_more(string name, ProxyHeader header, bool checksum)
    {
        var bytes = ProxyV2Writer.ToArray(header, checksum);
        for (int n = 0; n < bytes.Length; n++)
        {
            Assert.True(ProxyParseResult.NeedMore == ProxyV2Parser.TryParse(bytes.AsSpan(0, n), ProxyV2.DefaultMaxLength, out var h, out int c), $"{name} at {n}");
            Assert.Null(h);
            Assert.Equal(0, c);
        }
    }

    [Fact]
    public void Ipv4_header_matches_the_specification_layout()
    {
        var bytes = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4));
        Assert.Equal(Convert.FromHexString(Sig + "21" + "11" + "000C" + "C0000201" + "C6336402" + "DC04" + "01BB"), bytes);
    }

    [Fact]
    public void Ssl_tlv_layout_carries_client_verify_and_subtypes()
    {
        var header = new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "a.b", new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0, "TLSv1.3", "al"));
        var bytes = ProxyV2Writer.ToArray(header);
        var tlvs = Convert.ToHexString(bytes.AsSpan(16 + 12));
        // AUTHORITY "a.b"; SSL: client 0x03, verify 0, VERSION "TLSv1.3", CN "al"
        Assert.Equal("020003612E62" + "200014" + "03" + "00000000" + "210007544C5376312E33" + "220002616C", tlvs);
    }

    [Fact]
    public void Ipv4_mapped_addresses_are_written_as_ipv4()
    {
        var header = new ProxyHeader(ProxyCommand.Proxy, new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.1"), 1), new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.2"), 2));
        var bytes = ProxyV2Writer.ToArray(header);
        Assert.Equal(0x11, bytes[13]);
        ProxyV2Parser.TryParse(bytes, 4096, out var parsed, out _);
        Assert.Equal(IPAddress.Parse("192.0.2.1"), parsed!.Source!.Address);
    }

    [Fact]
    public void Mixed_families_become_unspec()
    {
        var bytes = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, IPEndPoint.Parse("[2001:db8::2]:443")));
        Assert.Equal(0x00, bytes[13]);
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryParse(bytes, 4096, out var parsed, out _));
        Assert.Null(parsed!.Source);
    }

    [Fact]
    public void Crc32c_check_value()
    {
        // The standard CRC-32C check value over "123456789".
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
    }

    public static TheoryData<string, string, ProxyParseResult> Hostile() => new()
    {
        { "PROXY v1 text", Convert.ToHexString("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"u8), ProxyParseResult.NotProxy },
        { "TLS instead", "160301020001", ProxyParseResult.NotProxy },
        { "signature breaks early", "0D0A0D0A01", ProxyParseResult.NotProxy },
        { "version 1", Sig + "11" + "11" + "000C" + new string('0', 24), ProxyParseResult.BadVersion },
        { "version 3", Sig + "31" + "11" + "000C" + new string('0', 24), ProxyParseResult.BadVersion },
        { "command 2", Sig + "22" + "11" + "000C" + new string('0', 24), ProxyParseResult.BadCommand },
        { "family 4", Sig + "21" + "41" + "0000", ProxyParseResult.BadAddress },
        { "transport 3", Sig + "21" + "13" + "000C" + new string('0', 24), ProxyParseResult.BadAddress },
        { "inet, length 11", Sig + "21" + "11" + "000B" + new string('0', 22), ProxyParseResult.BadAddress },
        { "inet6, length 12", Sig + "21" + "21" + "000C" + new string('0', 24), ProxyParseResult.BadAddress },
        { "unix, short", Sig + "21" + "31" + "0010" + new string('0', 32), ProxyParseResult.BadAddress },
        { "declared over the bound", Sig + "21" + "11" + "FFFF", ProxyParseResult.TooLarge },
        { "tlv header cut", Sig + "21" + "11" + "000E" + new string('0', 24) + "0200", ProxyParseResult.BadTlv },
        { "tlv value overruns", Sig + "21" + "11" + "0010" + new string('0', 24) + "020005" + "61", ProxyParseResult.BadTlv },
        { "duplicate authority", Sig + "21" + "11" + "0014" + new string('0', 24) + "02000161" + "02000162", ProxyParseResult.BadTlv },
        { "empty authority", Sig + "21" + "11" + "000F" + new string('0', 24) + "020000", ProxyParseResult.BadTlv },
        { "control char in authority", Sig + "21" + "11" + "0010" + new string('0', 24) + "0200010A", ProxyParseResult.BadTlv },
        { "invalid UTF-8 authority", Sig + "21" + "11" + "0011" + new string('0', 24) + "020002C328", ProxyParseResult.BadTlv },
        { "ssl shorter than 5", Sig + "21" + "11" + "0013" + new string('0', 24) + "20000401000000", ProxyParseResult.BadTlv },
        { "ssl unknown client bit", Sig + "21" + "11" + "0014" + new string('0', 24) + "2000050800000000", ProxyParseResult.BadTlv },
        { "ssl sub-tlv overruns", Sig + "21" + "11" + "0018" + new string('0', 24) + "2000090100000000" + "220009" + "61", ProxyParseResult.BadTlv },
        { "ssl duplicate CN", Sig + "21" + "11" + "001C" + new string('0', 24) + "20000D0100000000" + "22000161" + "22000162", ProxyParseResult.BadTlv },
        { "empty client certificate", Sig + "21" + "11" + "000F" + new string('0', 24) + "E00000", ProxyParseResult.BadTlv },
        { "duplicate client certificate", Sig + "21" + "11" + "0014" + new string('0', 24) + "E0000130" + "E0000130", ProxyParseResult.BadTlv },
        { "crc32c wrong length", Sig + "21" + "11" + "0011" + new string('0', 24) + "0300020000", ProxyParseResult.BadTlv },
        { "crc32c mismatch", Sig + "21" + "11" + "0013" + new string('0', 24) + "03000400000000", ProxyParseResult.BadChecksum },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void Hostile_headers_are_refused(string name, string hex, ProxyParseResult expected)
    {
        var bytes = Convert.FromHexString(hex);
        var result = ProxyV2Parser.TryParse(bytes, ProxyV2.DefaultMaxLength, out var header, out int consumed);
        Assert.True(expected == result, $"{name}: {result}");
        Assert.Null(header);
        Assert.Equal(0, consumed);
    }

    [Fact]
    public void Unknown_and_noop_tlvs_are_skipped()
    {
        var hex = Sig + "21" + "11" + "0017" + new string('0', 24) + "EE0001FF" + "040000" + "02000161";
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryParse(Convert.FromHexString(hex), 4096, out var header, out _));
        Assert.Equal("a", header!.Authority);
    }

    [Fact]
    public void A_tampered_checksummed_header_is_refused()
    {
        var bytes = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.acme.example"), withChecksum: true);
        bytes[20] ^= 1; // the source address
        Assert.Equal(ProxyParseResult.BadChecksum, ProxyV2Parser.TryParse(bytes, 4096, out _, out _));
    }

    [Fact]
    public void Length_can_be_read_from_the_prefix_alone()
    {
        var bytes = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.acme.example"));
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryReadLength(bytes.AsSpan(0, ProxyV2.PrefixLength), 4096, out int total));
        Assert.Equal(bytes.Length, total);
        Assert.Equal(ProxyParseResult.TooLarge, ProxyV2Parser.TryReadLength(bytes.AsSpan(0, ProxyV2.PrefixLength), 20, out _));
    }

    [Fact]
    public void A_client_certificate_over_its_bound_is_refused_by_parser_and_writer()
    {
        var der = new byte[ProxyV2.MaxClientCertificateLength + 1];
        Assert.Throws<ArgumentException>(() => ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, ClientCertificate: der)));
        var fits = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, ClientCertificate: der[1..]));
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryParse(fits, 2 * ProxyV2.MaxClientCertificateLength, out _, out _));
        // One byte more, written by hand: the TLV is refused, however large the caller's bound.
        var tooLong = new byte[fits.Length + 1];
        fits.CopyTo(tooLong, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tooLong.AsSpan(14), (ushort)(tooLong.Length - ProxyV2.PrefixLength));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tooLong.AsSpan(ProxyV2.PrefixLength + 12 + 1), (ushort)der.Length);
        Assert.Equal(ProxyParseResult.BadTlv, ProxyV2Parser.TryParse(tooLong, 2 * ProxyV2.MaxClientCertificateLength, out _, out _));
    }

    [Fact]
    public void The_writer_refuses_caller_mistakes()
    {
        Assert.Throws<ArgumentException>(() => ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, new string('a', 256))));
        Assert.Throws<ArgumentException>(() => ProxyV2Writer.Write(new byte[10], new ProxyHeader(ProxyCommand.Proxy, Client4, Server4)));
    }

    [Fact]
    public void Random_and_mutated_input_never_throws()
    {
        var random = new Random(11);
        var good = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, Client4, Server4, "vpn.acme.example",
            new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0, "TLSv1.3", "alice")));
        for (int i = 0; i < 5000; i++)
        {
            byte[] data;
            if (i % 2 == 0)
            {
                data = (byte[])good.Clone();
                for (int k = random.Next(1, 4); k > 0; k--) data[random.Next(data.Length)] = (byte)random.Next(256);
            }
            else
            {
                data = new byte[random.Next(0, 300)];
                random.NextBytes(data);
                if (data.Length >= 12) Convert.FromHexString(Sig).CopyTo(data, 0);
            }

            var result = ProxyV2Parser.TryParse(data, ProxyV2.DefaultMaxLength, out var header, out int consumed);
            Assert.Equal(result == ProxyParseResult.Ok, header is not null);
            Assert.InRange(consumed, 0, data.Length);
        }
    }

    [Theory]
    [InlineData(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession, 0u, true)]
    [InlineData(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateInSession, 0u, true)] // a resumed session's certificate
    [InlineData(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0u, true)]
    [InlineData(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateInSession, 1u, false)]
    [InlineData(ProxyClientFlags.Ssl, 0u, false)] // verify is 0, but no certificate was presented
    public void A_certificate_counts_as_verified_when_presented_on_the_connection_or_in_its_session_and_verify_is_zero(ProxyClientFlags flags, uint verify, bool verified) =>
        Assert.Equal(verified, new ProxySslInfo(flags, verify).CertificateVerified);
}
