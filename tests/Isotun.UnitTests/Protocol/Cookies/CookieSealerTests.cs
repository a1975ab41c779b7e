using System.Buffers.Text;
using Isotun.Protocol.Cookies;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Protocol.Cookies;

public class CookieSealerTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(Now);

    [Theory]
    [InlineData("tenantA", "alice")]
    [InlineData("", "")]
    [InlineData("t\u00e9nant-\u4e2d", "\U0001F600 user@example.com")]
    public void Round_trips(string tenant, string user)
    {
        var sealer = new CookieSealer(Key(1), _time);
        var ticket = new SessionTicket(Guid.NewGuid(), tenant, user, Now.AddHours(8));

        string cookie = sealer.Seal(ticket);

        Assert.True(cookie.Length <= CookieSealer.MaxCookieLength);
        Assert.DoesNotContain('=', cookie);
        Assert.DoesNotContain('+', cookie);
        Assert.DoesNotContain('/', cookie);
        Assert.Equal(CookieOpenResult.Ok, sealer.TryOpen(cookie, out var opened));
        Assert.Equal(ticket, opened);
    }

    [Fact]
    public void Longest_names_fit_and_longer_ones_are_refused()
    {
        var sealer = new CookieSealer(Key(1), _time);
        var name = new string('x', CookieSealer.MaxNameBytes);
        var ticket = new SessionTicket(Guid.NewGuid(), name, name, Now.AddHours(1));
        string cookie = sealer.Seal(ticket);
        Assert.True(cookie.Length <= CookieSealer.MaxCookieLength);
        Assert.Equal(CookieOpenResult.Ok, sealer.TryOpen(cookie, out var opened));
        Assert.Equal(ticket, opened);

        Assert.Throws<ArgumentException>(() => sealer.Seal(ticket with { User = name + "y" }));
    }

    [Fact]
    public void Sealing_twice_gives_different_cookies()
    {
        var sealer = new CookieSealer(Key(1), _time);
        var ticket = new SessionTicket(Guid.NewGuid(), "t", "u", Now.AddHours(1));
        Assert.NotEqual(sealer.Seal(ticket), sealer.Seal(ticket));
    }

    [Fact]
    public void Expires_exactly_at_expiry()
    {
        var sealer = new CookieSealer(Key(1), _time);
        var ticket = new SessionTicket(Guid.NewGuid(), "t", "u", Now.AddMinutes(10));
        string cookie = sealer.Seal(ticket);

        _time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.Equal(CookieOpenResult.Ok, sealer.TryOpen(cookie, out _));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(CookieOpenResult.Expired, sealer.TryOpen(cookie, out var expired));
        Assert.Null(expired);

        _time.Advance(TimeSpan.FromDays(365));
        Assert.Equal(CookieOpenResult.Expired, sealer.TryOpen(cookie, out _));
    }

    [Fact]
    public void Already_expired_ticket_does_not_open()
    {
        var sealer = new CookieSealer(Key(1), _time);
        string cookie = sealer.Seal(new SessionTicket(Guid.NewGuid(), "t", "u", Now.AddSeconds(-1)));
        Assert.Equal(CookieOpenResult.Expired, sealer.TryOpen(cookie, out _));
    }

    [Fact]
    public void Every_single_bit_flip_of_the_token_is_rejected()
    {
        var sealer = new CookieSealer(Key(1), _time);
        string cookie = sealer.Seal(new SessionTicket(Guid.NewGuid(), "tenantA", "alice", Now.AddHours(1)));
        byte[] raw = Base64Url.DecodeFromChars(cookie);

        for (int bit = 0; bit < raw.Length * 8; bit++)
        {
            var flipped = (byte[])raw.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            var result = sealer.TryOpen(Base64Url.EncodeToString(flipped), out var ticket);
            Assert.True(result is CookieOpenResult.Tampered or CookieOpenResult.Malformed, $"bit {bit}: {result}");
            Assert.Null(ticket);
        }
    }

    [Fact]
    public void Every_single_bit_flip_of_the_text_is_rejected()
    {
        var sealer = new CookieSealer(Key(1), _time);
        string cookie = sealer.Seal(new SessionTicket(Guid.NewGuid(), "tenantA", "alice", Now.AddHours(1)));

        for (int i = 0; i < cookie.Length; i++)
        {
            for (int bit = 0; bit < 16; bit++)
            {
                var chars = cookie.ToCharArray();
                chars[i] = (char)(chars[i] ^ (1 << bit));
                var result = sealer.TryOpen(new string(chars), out _);
                Assert.True(result is CookieOpenResult.Tampered or CookieOpenResult.Malformed, $"char {i} bit {bit}: {result}");
            }
        }
    }

    [Fact]
    public void Truncated_or_extended_cookies_are_rejected()
    {
        var sealer = new CookieSealer(Key(1), _time);
        string cookie = sealer.Seal(new SessionTicket(Guid.NewGuid(), "tenantA", "alice", Now.AddHours(1)));
        for (int length = 0; length < cookie.Length; length++)
        {
            var result = sealer.TryOpen(cookie[..length], out _);
            Assert.True(result is CookieOpenResult.Tampered or CookieOpenResult.Malformed, $"length {length}: {result}");
        }

        Assert.NotEqual(CookieOpenResult.Ok, sealer.TryOpen(cookie + "A", out _));
        Assert.NotEqual(CookieOpenResult.Ok, sealer.TryOpen(cookie + "AAAA", out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("!!!!")]
    [InlineData("====")]
    [InlineData("abc def")]
    [InlineData("AQ")]
    [InlineData("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA")]
    [InlineData("ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg")]
    public void Garbage_is_malformed(string cookie)
    {
        var sealer = new CookieSealer(Key(1), _time);
        Assert.Equal(CookieOpenResult.Malformed, sealer.TryOpen(cookie, out var ticket));
        Assert.Null(ticket);
    }

    [Fact]
    public void Null_and_oversized_are_malformed()
    {
        var sealer = new CookieSealer(Key(1), _time);
        Assert.Equal(CookieOpenResult.Malformed, sealer.TryOpen(null!, out _));
        Assert.Equal(CookieOpenResult.Malformed, sealer.TryOpen(new string('A', CookieSealer.MaxCookieLength + 1), out _));
        Assert.Equal(CookieOpenResult.Malformed, sealer.TryOpen(new string('A', 100_000), out _));
    }

    [Fact]
    public void Random_strings_never_throw()
    {
        var sealer = new CookieSealer(Key(1), _time);
        var random = new Random(5);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ \u00e9";
        for (int i = 0; i < 3000; i++)
        {
            var chars = new char[random.Next(0, 1100)];
            for (int j = 0; j < chars.Length; j++)
            {
                chars[j] = alphabet[random.Next(alphabet.Length)];
            }

            var result = sealer.TryOpen(new string(chars), out var ticket);
            Assert.NotEqual(CookieOpenResult.Ok, result);
            Assert.Null(ticket);
        }
    }

    [Fact]
    public void Wrong_key_is_tampered()
    {
        var ticket = new SessionTicket(Guid.NewGuid(), "tenantA", "alice", Now.AddHours(1));
        string cookie = new CookieSealer(Key(1), _time).Seal(ticket);
        Assert.Equal(CookieOpenResult.Tampered, new CookieSealer(Key(2), _time).TryOpen(cookie, out var opened));
        Assert.Null(opened);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(31)]
    [InlineData(33)]
    public void Key_must_be_32_bytes(int length)
    {
        Assert.Throws<ArgumentException>(() => new CookieSealer(new byte[length], _time));
    }

    private static byte[] Key(byte seed)
    {
        var key = new byte[CookieSealer.KeyLength];
        for (int i = 0; i < key.Length; i++)
        {
            key[i] = (byte)(seed * 31 + i);
        }

        return key;
    }
}
