using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Isotun.Protocol.Cookies;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// A <c>webvpn</c> cookie as a client presents it, opened with a fixed key at a fixed time. The input bytes are the
/// cookie's characters one for one (Latin-1), so every ASCII and non-ASCII case is reachable. An opened ticket seals
/// and opens again to the same ticket; nothing else opens.
/// An input that starts with a zero byte (never in a cookie) is a plaintext instead: the target seals the rest itself
/// in the cookie format (version 1, zero nonce, AES-256-GCM, the cookie's associated data), so AFL also reaches the
/// ticket decoding behind the authentication, which forged cookies never pass. Such a cookie is authentic, so it is
/// never Tampered.
/// </summary>
public sealed class CookieTarget : IFuzzTarget
{
    /// <summary>The fixed key the seeds were sealed with: 32 bytes 0x00..0x1f.</summary>
    public static byte[] Key { get; } = Enumerable.Range(0, CookieSealer.KeyLength).Select(i => (byte)i).ToArray();

    /// <summary>The fixed "now": seeds sealed to expire after it open as Ok, the others as Expired.</summary>
    public static DateTimeOffset Now { get; } = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly CookieSealer Sealer = new(Key, new FixedTime(Now));

    public string Name => "cookie";

    public string Description => "webvpn cookies (CookieSealer.TryOpen, fixed key and clock) with a seal round trip; a leading 0 byte: a plaintext the target seals";

    public void Run(ReadOnlySpan<byte> input)
    {
        bool sealedHere = !input.IsEmpty && input[0] == 0;
        string cookie = sealedHere ? SealPlaintext(input[1..]) : Encoding.Latin1.GetString(input);
        var result = Sealer.TryOpen(cookie, out var ticket);
        Invariant.Defined(result);
        Invariant.That(!sealedHere || result != CookieOpenResult.Tampered);
        Invariant.That((result == CookieOpenResult.Ok) == (ticket is not null));
        if (ticket is null)
        {
            return;
        }

        Invariant.That(cookie.Length <= CookieSealer.MaxCookieLength);
        Invariant.That(ticket.ExpiresAt > Now);
        Invariant.That(Encoding.UTF8.GetByteCount(ticket.Tenant) <= CookieSealer.MaxNameBytes);
        Invariant.That(Encoding.UTF8.GetByteCount(ticket.User) <= CookieSealer.MaxNameBytes);
        var again = Sealer.TryOpen(Sealer.Seal(ticket), out var reopened);
        Invariant.That(again == CookieOpenResult.Ok && reopened == ticket);
    }

    /// <summary>The cookie format of <see cref="CookieSealer"/>: <c>1 | nonce (12) | ciphertext | tag (16)</c>, base64url.</summary>
    public static string SealPlaintext(ReadOnlySpan<byte> plaintext)
    {
        const int nonceLength = 12, tagLength = 16;
        var raw = new byte[1 + nonceLength + plaintext.Length + tagLength];
        raw[0] = 1;
        using (var aes = new AesGcm(Key, tagLength))
        {
            aes.Encrypt(raw.AsSpan(1, nonceLength), plaintext, raw.AsSpan(1 + nonceLength, plaintext.Length),
                raw.AsSpan(1 + nonceLength + plaintext.Length), "isotun-cookie-v1"u8);
        }

        return Base64Url.EncodeToString(raw);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
