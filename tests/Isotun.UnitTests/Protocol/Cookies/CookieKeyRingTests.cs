using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Isotun.Protocol.Cookies;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Protocol.Cookies;

/// <summary>Cookie keys rotate: the newest seals, older ones open their cookies until those have expired, then go.</summary>
public class CookieKeyRingTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    private readonly FakeTimeProvider _time = new(Start);

    private SessionTicket Ticket() => new(Guid.NewGuid(), "acme", "alice", _time.GetUtcNow() + Lifetime, 7);

    [Fact]
    public void A_rotated_ring_seals_with_its_new_key_and_still_opens_the_old_keys_cookies_until_they_expired()
    {
        var ring = CookieKeyRing.Create(Start);
        var sealer = new CookieSealer(ring, _time);
        var before = Ticket();
        var old = sealer.Seal(before);

        _time.Advance(TimeSpan.FromHours(24));
        Assert.True(ring.RotationDue(_time.GetUtcNow(), TimeSpan.FromHours(24)));
        var rotated = ring.Rotated(_time.GetUtcNow(), Lifetime);
        Assert.Equal([1u, 0u], rotated.Keys.Select(k => k.Id));
        Assert.False(rotated.RotationDue(_time.GetUtcNow(), TimeSpan.FromHours(24)));
        sealer.Use(rotated);
        sealer.Use(ring); // an older ring, from a caller that raced the rotation, does not undo it
        Assert.Same(rotated, sealer.Ring);
        var fresh = Ticket();
        var cookie = sealer.Seal(fresh);
        Assert.Equal(CookieOpenResult.Ok, sealer.TryOpen(cookie, out var opened));
        Assert.Equal(fresh, opened);
        // A server still on the old ring does not know the new key.
        Assert.Equal(CookieOpenResult.Tampered, new CookieSealer(ring, _time).TryOpen(cookie, out _));
        // The old key's cookie opens as expired, not as forged: the key is still there for what it sealed.
        Assert.Equal(CookieOpenResult.Expired, sealer.TryOpen(old, out _));

        // Next rotation: key 0 stopped sealing a day ago, longer than any cookie lives, so it goes; key 1 stays an hour.
        _time.Advance(TimeSpan.FromHours(24));
        var third = rotated.Rotated(_time.GetUtcNow(), Lifetime);
        Assert.Equal([2u, 1u], third.Keys.Select(k => k.Id));
        sealer.Use(third);
        Assert.Equal(CookieOpenResult.Tampered, sealer.TryOpen(old, out _));
        _time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal([3u, 2u, 1u], third.Rotated(_time.GetUtcNow(), Lifetime).Keys.Select(k => k.Id));
        _time.Advance(TimeSpan.FromMinutes(31));
        Assert.Equal([3u, 2u], third.Rotated(_time.GetUtcNow(), Lifetime).Keys.Select(k => k.Id));
    }

    [Fact]
    public void A_ring_round_trips_through_its_stored_form_and_a_bare_key_is_a_ring_of_one()
    {
        var ring = CookieKeyRing.Create(Start).Rotated(Start.AddMinutes(1), Lifetime).Rotated(Start.AddMinutes(2), Lifetime);
        var read = CookieKeyRing.Parse(ring.ToBytes(), Start, out var error);
        Assert.Null(error);
        Assert.Equal(ring.Keys.Select(k => (k.Id, Convert.ToHexString(k.Key), k.Created)), read!.Keys.Select(k => (k.Id, Convert.ToHexString(k.Key), k.Created)));

        var bare = RandomNumberGenerator.GetBytes(CookieSealer.KeyLength);
        var legacy = CookieKeyRing.Parse(bare, Start, out error)!;
        Assert.Equal(0u, legacy.Current.Id);
        Assert.Equal(bare, legacy.Current.Key);
        Assert.Equal(Start, legacy.Current.Created);

        Assert.Null(CookieKeyRing.Parse(new byte[45], Start, out error));
        Assert.Contains("45 bytes", error);
        var outOfOrder = ring.ToBytes();
        outOfOrder.AsSpan(0, 44).CopyTo(outOfOrder.AsSpan(44)); // record 1 repeats record 0's id
        Assert.Null(CookieKeyRing.Parse(outOfOrder, Start, out error));
        Assert.Contains("record 1", error);
    }

    [Fact]
    public void A_version_2_cookie_without_a_key_id_opens_with_key_0()
    {
        var key = RandomNumberGenerator.GetBytes(CookieSealer.KeyLength);
        var ticket = Ticket();
        // Version 2: version | nonce | ciphertext | tag, the plaintext with the credential.
        var tenant = Encoding.UTF8.GetBytes(ticket.Tenant);
        var user = Encoding.UTF8.GetBytes(ticket.User);
        var plaintext = new byte[16 + 8 + 2 + tenant.Length + 2 + user.Length + 8];
        ticket.SessionId.TryWriteBytes(plaintext);
        BinaryPrimitives.WriteInt64BigEndian(plaintext.AsSpan(16), ticket.ExpiresAt.ToUnixTimeSeconds());
        BinaryPrimitives.WriteUInt16BigEndian(plaintext.AsSpan(24), (ushort)tenant.Length);
        tenant.CopyTo(plaintext, 26);
        BinaryPrimitives.WriteUInt16BigEndian(plaintext.AsSpan(26 + tenant.Length), (ushort)user.Length);
        user.CopyTo(plaintext, 28 + tenant.Length);
        BinaryPrimitives.WriteUInt64BigEndian(plaintext.AsSpan(28 + tenant.Length + user.Length), ticket.Credential);
        var raw = new byte[1 + 12 + plaintext.Length + 16];
        raw[0] = 2;
        RandomNumberGenerator.Fill(raw.AsSpan(1, 12));
        using (var aes = new AesGcm(key, 16))
            aes.Encrypt(raw.AsSpan(1, 12), plaintext, raw.AsSpan(13, plaintext.Length), raw.AsSpan(13 + plaintext.Length), "isotun-cookie-v1"u8);
        var cookie = Base64Url.EncodeToString(raw);

        var ring = CookieKeyRing.Of(key, Start).Rotated(_time.GetUtcNow(), Lifetime);
        Assert.Equal(CookieOpenResult.Ok, new CookieSealer(ring, _time).TryOpen(cookie, out var opened));
        Assert.Equal(ticket, opened);
    }
}
