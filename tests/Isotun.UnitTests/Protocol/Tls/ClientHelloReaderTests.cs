using System.Text;
using Isotun.Protocol.Tls;
using static Isotun.UnitTests.Protocol.Tls.TlsVectors;

namespace Isotun.UnitTests.Protocol.Tls;

public class ClientHelloReaderTests
{
    private static (ClientHelloOutcome Outcome, string? Name, byte[] Buffered) ReadAll(byte[] data, int max = ClientHelloReader.DefaultMaxBytes)
    {
        using var reader = new ClientHelloReader(max);
        var outcome = reader.Feed(data.AsSpan(0, Math.Min(data.Length, reader.Remaining)));
        if (outcome == ClientHelloOutcome.NeedMore && data.Length > max) outcome = ClientHelloOutcome.TooLarge;
        return (outcome, reader.ServerName, reader.Buffered.ToArray());
    }

    /// <summary>Feeds <paramref name="data"/> in random segments; stops at the first final outcome, like the gateway.</summary>
    private static (ClientHelloOutcome Outcome, string? Name, byte[] Buffered) ReadSplit(byte[] data, int seed, int max = ClientHelloReader.DefaultMaxBytes)
    {
        using var reader = new ClientHelloReader(max);
        var outcome = ClientHelloOutcome.NeedMore;
        foreach (var chunk in Resplitter.Chunks(data, new Random(seed), maxChunk: 200))
        {
            if (chunk.Length > reader.Remaining) return (ClientHelloOutcome.TooLarge, null, reader.Buffered.ToArray());
            outcome = reader.Feed(chunk);
            if (outcome != ClientHelloOutcome.NeedMore) break;
        }

        return (outcome, reader.ServerName, reader.Buffered.ToArray());
    }

    public static TheoryData<string, byte[], ClientHelloOutcome, string?> Vectors()
    {
        var longLabel = new string('a', 64) + ".example";
        var data = new TheoryData<string, byte[], ClientHelloOutcome, string?>
        {
            { "openssl with SNI", OpenSslWithSni, ClientHelloOutcome.ServerName, "vpn.acme.example" },
            { "openssl without SNI", OpenSslWithoutSni, ClientHelloOutcome.NoServerName, null },
            { "built, SNI", Record(Hello([SupportedVersions, Sni("a.example")])), ClientHelloOutcome.ServerName, "a.example" },
            { "upper case is folded", Record(Hello([Sni("VPN.Acme.Example")])), ClientHelloOutcome.ServerName, "vpn.acme.example" },
            { "one trailing dot is dropped", Record(Hello([Sni("vpn.acme.example.")])), ClientHelloOutcome.ServerName, "vpn.acme.example" },
            { "no extensions block", Record(Hello(null)), ClientHelloOutcome.NoServerName, null },
            { "empty extensions block", Record(Hello([])), ClientHelloOutcome.NoServerName, null },
            { "other extensions only", Record(Hello([SupportedVersions])), ClientHelloOutcome.NoServerName, null },
            { "unknown name type only", Record(Hello([(0, ServerNameData((1, "x"u8.ToArray())))])), ClientHelloOutcome.NoServerName, null },
            { "unknown name type is skipped", Record(Hello([(0, ServerNameData((7, "x"u8.ToArray()), (0, "b.example"u8.ToArray())))])), ClientHelloOutcome.ServerName, "b.example" },

            { "HTTP", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"u8.ToArray(), ClientHelloOutcome.NotTls, null },
            { "SSH", "SSH-2.0-OpenSSH_9.2\r\n"u8.ToArray(), ClientHelloOutcome.NotTls, null },
            { "SSLv2 hello", new byte[] { 0x80, 0x2e, 0x01, 0x00, 0x02 }, ClientHelloOutcome.NotTls, null },
            { "handshake type, not version 3", new byte[] { 0x16, 0x02, 0x00, 0x00, 0x05 }, ClientHelloOutcome.NotTls, null },
            { "alert record first", new byte[] { 0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28 }, ClientHelloOutcome.NotTls, null },

            { "zero-length record", new byte[] { 0x16, 0x03, 0x01, 0x00, 0x00 }, ClientHelloOutcome.Malformed, null },
            { "record over 2^14", new byte[] { 0x16, 0x03, 0x01, 0x40, 0x01 }, ClientHelloOutcome.Malformed, null },
            { "ServerHello instead", Record([0x02, 0x00, 0x00, 0x02, 0x03, 0x03]), ClientHelloOutcome.Malformed, null },
            { "hello body truncated", Record([0x01, 0x00, 0x00, 0x03, 0x03, 0x03, 0x00]), ClientHelloOutcome.Malformed, null },
            { "odd cipher suite length", Record(BreakSuites()), ClientHelloOutcome.Malformed, null },
            { "session id over 32", Record(Hello([Sni("a.example")], sessionId: new byte[33])), ClientHelloOutcome.Malformed, null },
            { "duplicate extension", Record(Hello([SupportedVersions, SupportedVersions])), ClientHelloOutcome.Malformed, null },
            { "two host names", Record(Hello([(0, ServerNameData((0, "a.example"u8.ToArray()), (0, "b.example"u8.ToArray())))])), ClientHelloOutcome.Malformed, null },
            { "empty server_name list", Record(Hello([(0, new byte[] { 0x00, 0x00 })])), ClientHelloOutcome.Malformed, null },
            { "empty server_name data", Record(Hello([(0, Array.Empty<byte>())])), ClientHelloOutcome.Malformed, null },
            { "server_name list overruns", Record(Hello([(0, new byte[] { 0x00, 0x09, 0x00, 0x00, 0x01, 0x61 })])), ClientHelloOutcome.Malformed, null },
            { "empty host name", Record(Hello([Sni("")])), ClientHelloOutcome.Malformed, null },
            { "NUL in host name", Record(Hello([(0, ServerNameData((0, "a\0.example"u8.ToArray())))])), ClientHelloOutcome.Malformed, null },
            { "space in host name", Record(Hello([Sni("a b.example")])), ClientHelloOutcome.Malformed, null },
            { "empty label", Record(Hello([Sni("a..example")])), ClientHelloOutcome.Malformed, null },
            { "label over 63", Record(Hello([Sni(longLabel)])), ClientHelloOutcome.Malformed, null },
            { "name over 255", Record(Hello([Sni(string.Join('.', Enumerable.Repeat("abcdefgh", 30)))])), ClientHelloOutcome.Malformed, null },
            { "UTF-8 host name", Record(Hello([(0, ServerNameData((0, Encoding.UTF8.GetBytes("bücher.example"))))])), ClientHelloOutcome.Malformed, null },
            { "alert between records", [.. Record(Hello([Sni("a.example")])[..20]), 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28], ClientHelloOutcome.Malformed, null },
            { "declared hello over 64 KiB", Record([0x01, 0x01, 0x00, 0x00, 0x03, 0x03]), ClientHelloOutcome.TooLarge, null },
        };
        return data;
    }

    private static byte[] BreakSuites()
    {
        var hello = Hello([Sni("a.example")]);
        // cipher_suites length sits after type(1) len(3) version(2) random(32) session id(1+32)
        hello[4 + 2 + 32 + 1 + 32 + 1] = 0x03;
        return hello;
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Whole_buffer(string name, byte[] data, ClientHelloOutcome expected, string? serverName)
    {
        var (outcome, sni, buffered) = ReadAll(data);
        Assert.True(expected == outcome, $"{name}: {outcome}");
        Assert.Equal(serverName, sni);
        Assert.Equal(data[..buffered.Length], buffered);
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Resplit_into_segments(string name, byte[] data, ClientHelloOutcome expected, string? serverName)
    {
        foreach (int seed in Resplitter.Seeds)
        {
            var (outcome, sni, buffered) = ReadSplit(data, seed);
            Assert.True(expected == outcome, $"{name}, seed {seed}: {outcome}");
            Assert.Equal(serverName, sni);
            Assert.Equal(data[..buffered.Length], buffered);
        }
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Resplit_into_records_and_segments(string name, byte[] data, ClientHelloOutcome expected, string? serverName)
    {
        // Only well-framed single-record vectors can be re-framed; their outcome must not depend on the framing.
        if (data.Length <= 5 || data[0] != 0x16 || data[1] != 0x03 || ((data[3] << 8) | data[4]) != data.Length - 5 || data[3] >= 0x40) return;
        var handshake = HandshakeBytes(data);
        foreach (int seed in Resplitter.Seeds)
        {
            var random = new Random(seed);
            var records = Reframe(handshake, random);
            var (outcome, sni, buffered) = ReadSplit(records, seed);
            Assert.True(expected == outcome, $"{name}, seed {seed}: {outcome}");
            Assert.Equal(serverName, sni);
            Assert.Equal(records[..buffered.Length], buffered);
        }
    }

    [Fact]
    public void A_hello_split_into_one_byte_records_is_reassembled()
    {
        var handshake = HandshakeBytes(OpenSslWithSni);
        var records = Reframe(handshake, new Random(1), maxRecord: 1);
        Assert.Equal(6 * handshake.Length, records.Length);
        var (outcome, sni, buffered) = ReadAll(records);
        Assert.Equal(ClientHelloOutcome.ServerName, outcome);
        Assert.Equal("vpn.acme.example", sni);
        Assert.Equal(records, buffered);
    }

    [Fact]
    public void Bytes_after_the_hello_are_kept_for_replay()
    {
        var data = OpenSslWithSni.Concat(new byte[] { 0x17, 0x03, 0x03, 0x00, 0x01, 0xAA }).ToArray();
        var (outcome, _, buffered) = ReadAll(data);
        Assert.Equal(ClientHelloOutcome.ServerName, outcome);
        Assert.Equal(data, buffered);
    }

    [Fact]
    public void A_truncated_hello_needs_more_and_never_decides()
    {
        for (int cut = 1; cut < OpenSslWithSni.Length; cut += 7)
        {
            var (outcome, _, _) = ReadAll(OpenSslWithSni[..cut]);
            Assert.True(outcome == ClientHelloOutcome.NeedMore, $"cut at {cut}: {outcome}");
        }
    }

    [Fact]
    public void Not_tls_is_decided_from_the_first_byte()
    {
        using var reader = new ClientHelloReader();
        Assert.Equal(ClientHelloOutcome.NotTls, reader.Feed("G"u8));
    }

    [Fact]
    public void A_hello_bigger_than_the_bound_is_too_large()
    {
        // A valid hello padded to ~3 KiB, read with a 1 KiB bound.
        var padded = Record(Hello([Sni("a.example"), (0x0015, new byte[3000])]));
        Assert.Equal(ClientHelloOutcome.ServerName, ReadAll(padded).Outcome);
        Assert.Equal(ClientHelloOutcome.TooLarge, ReadAll(padded, max: 1024).Outcome);
        foreach (int seed in Resplitter.Seeds) Assert.Equal(ClientHelloOutcome.TooLarge, ReadSplit(padded, seed, max: 1024).Outcome);
    }

    [Fact]
    public void Endless_small_records_stop_at_the_bound()
    {
        // A declared 60 000-byte hello in 1-byte records: 6 bytes per hello byte, so the raw bound is hit first.
        var hello = new byte[4 + 60_000];
        hello[0] = 1;
        hello[1] = 0;
        hello[2] = (byte)(60_000 >> 8);
        hello[3] = (byte)(60_000 & 0xFF);
        var records = Reframe(hello, new Random(3), maxRecord: 1);
        using var reader = new ClientHelloReader();
        var outcome = ClientHelloOutcome.NeedMore;
        int fed = 0;
        while (outcome == ClientHelloOutcome.NeedMore && reader.Remaining > 0)
        {
            int n = Math.Min(reader.Remaining, 1000);
            outcome = reader.Feed(records.AsSpan(fed, n));
            fed += n;
        }

        Assert.Equal(ClientHelloOutcome.TooLarge, outcome);
        Assert.True(fed <= ClientHelloReader.DefaultMaxBytes);
    }

    [Fact]
    public void Feeding_more_than_the_bound_is_a_caller_error()
    {
        using var reader = new ClientHelloReader(1024);
        Assert.Throws<ArgumentOutOfRangeException>(() => reader.Feed(new byte[1025]));
    }

    [Fact]
    public void Random_garbage_never_throws()
    {
        var random = new Random(42);
        for (int i = 0; i < 3000; i++)
        {
            var data = new byte[random.Next(0, 600)];
            random.NextBytes(data);
            if (i % 3 == 0 && data.Length > 2) { data[0] = 0x16; data[1] = 0x03; }
            using var reader = new ClientHelloReader(4096);
            foreach (var chunk in Resplitter.Chunks(data, random)) reader.Feed(chunk);
        }
    }

    [Fact]
    public void Mutated_real_hellos_never_throw_and_never_yield_an_invalid_name()
    {
        var random = new Random(7);
        for (int i = 0; i < 3000; i++)
        {
            var data = (byte[])OpenSslWithSni.Clone();
            for (int k = random.Next(1, 4); k > 0; k--) data[random.Next(data.Length)] = (byte)random.Next(256);
            var (outcome, sni, _) = ReadAll(data);
            if (outcome == ClientHelloOutcome.ServerName)
            {
                Assert.NotNull(sni);
                Assert.NotNull(ClientHelloReader.NormalizeHostName(Encoding.ASCII.GetBytes(sni!)));
            }
        }
    }
}
