using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Protocol.Cookies;

/// <summary>
/// Seals <see cref="SessionTicket"/>s into the <c>webvpn</c> cookie with AES-256-GCM, so the server needs no
/// lookup to trust a cookie and clients can neither read nor forge one. Format (base64url, unpadded):
/// <c>version 2 | nonce (12) | ciphertext | tag (16)</c> with AAD <c>"isotun-cookie-v1"</c>; the plaintext is
/// <c>session id (16) | expiry unix seconds (i64 BE) | u16 BE length + UTF-8 tenant | u16 BE length + UTF-8 user |
/// credential (u64 BE)</c>. Version 1 (without the credential) is still opened, with credential 0.
/// Thread-safe: a fresh <see cref="AesGcm"/> is used per call.
/// </summary>
public sealed class CookieSealer
{
    /// <summary>Key length in bytes (AES-256).</summary>
    public const int KeyLength = 32;

    /// <summary>Longest cookie string accepted by <see cref="TryOpen"/>.</summary>
    public const int MaxCookieLength = 1024;

    /// <summary>Longest tenant or user name, in UTF-8 bytes, that fits in a cookie.</summary>
    public const int MaxNameBytes = 256;

    private const byte FormatVersion = 2, FormatVersion1 = 1;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const int Overhead = 1 + NonceLength + TagLength;
    private const int FixedPlaintext = 16 + 8 + 2 + 2;

    private static readonly byte[] AssociatedData = "isotun-cookie-v1"u8.ToArray();
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _key;
    private readonly TimeProvider _time;

    /// <summary>Creates a sealer for a 32-byte key.</summary>
    public CookieSealer(ReadOnlySpan<byte> key, TimeProvider time)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException($"Cookie key must be {KeyLength} bytes.", nameof(key));
        }

        ArgumentNullException.ThrowIfNull(time);
        _key = key.ToArray();
        _time = time;
    }

    /// <summary>Seals a ticket into a cookie value. Throws when tenant or user exceed <see cref="MaxNameBytes"/>.</summary>
    public string Seal(SessionTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        int tenantBytes = StrictUtf8.GetByteCount(ticket.Tenant);
        int userBytes = StrictUtf8.GetByteCount(ticket.User);
        if (tenantBytes > MaxNameBytes || userBytes > MaxNameBytes)
        {
            throw new ArgumentException($"Tenant and user must be at most {MaxNameBytes} UTF-8 bytes.", nameof(ticket));
        }

        int plaintextLength = FixedPlaintext + tenantBytes + userBytes + 8;
        Span<byte> plaintext = stackalloc byte[FixedPlaintext + (2 * MaxNameBytes) + 8];
        plaintext = plaintext[..plaintextLength];
        ticket.SessionId.TryWriteBytes(plaintext);
        BinaryPrimitives.WriteInt64BigEndian(plaintext[16..], ticket.ExpiresAt.ToUnixTimeSeconds());
        int offset = 24;
        offset += WriteName(plaintext[offset..], ticket.Tenant);
        offset += WriteName(plaintext[offset..], ticket.User);
        BinaryPrimitives.WriteUInt64BigEndian(plaintext[offset..], ticket.Credential);

        var sealedBytes = new byte[Overhead + plaintextLength];
        sealedBytes[0] = FormatVersion;
        var nonce = sealedBytes.AsSpan(1, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        var ciphertext = sealedBytes.AsSpan(1 + NonceLength, plaintextLength);
        var tag = sealedBytes.AsSpan(1 + NonceLength + plaintextLength, TagLength);
        using (var aes = new AesGcm(_key, TagLength))
        {
            aes.Encrypt(nonce, plaintext, ciphertext, tag, AssociatedData);
        }

        CryptographicOperations.ZeroMemory(plaintext);
        return Base64Url.EncodeToString(sealedBytes);
    }

    /// <summary>Opens a cookie value. Never throws; <paramref name="ticket"/> is set only on <see cref="CookieOpenResult.Ok"/>.</summary>
    public CookieOpenResult TryOpen(string cookie, out SessionTicket? ticket)
    {
        ticket = null;
        if (string.IsNullOrEmpty(cookie) || cookie.Length > MaxCookieLength)
        {
            return CookieOpenResult.Malformed;
        }

        // Strict alphabet first: the decoder would skip whitespace and accept padding.
        foreach (char c in cookie)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_'))
            {
                return CookieOpenResult.Malformed;
            }
        }

        Span<byte> raw = stackalloc byte[MaxCookieLength];
        if (Base64Url.DecodeFromChars(cookie, raw, out int charsConsumed, out int rawLength) != OperationStatus.Done || charsConsumed != cookie.Length)
        {
            return CookieOpenResult.Malformed;
        }

        raw = raw[..rawLength];

        // Only the canonical encoding is accepted, so no two strings open to the same ticket.
        Span<char> canonical = stackalloc char[MaxCookieLength + 4];
        if (!Base64Url.TryEncodeToChars(raw, canonical, out int canonicalLength) || !canonical[..canonicalLength].SequenceEqual(cookie))
        {
            return CookieOpenResult.Malformed;
        }

        if (raw.Length < Overhead + FixedPlaintext || raw[0] is not (FormatVersion or FormatVersion1))
        {
            return CookieOpenResult.Malformed;
        }

        int plaintextLength = raw.Length - Overhead;
        var nonce = raw.Slice(1, NonceLength);
        var ciphertext = raw.Slice(1 + NonceLength, plaintextLength);
        var tag = raw.Slice(1 + NonceLength + plaintextLength, TagLength);
        Span<byte> plaintext = stackalloc byte[MaxCookieLength];
        plaintext = plaintext[..plaintextLength];
        try
        {
            using var aes = new AesGcm(_key, TagLength);
            aes.Decrypt(nonce, ciphertext, tag, plaintext, AssociatedData);
        }
        catch (CryptographicException)
        {
            return CookieOpenResult.Tampered;
        }

        try
        {
            var sessionId = new Guid(plaintext[..16]);
            long expiresSeconds = BinaryPrimitives.ReadInt64BigEndian(plaintext[16..]);
            int offset = 24;
            ulong credential = 0;
            bool named = TryReadName(plaintext, ref offset, out string? tenant) & TryReadName(plaintext, ref offset, out string? user);
            if (named && raw[0] == FormatVersion && offset + 8 == plaintext.Length)
            {
                credential = BinaryPrimitives.ReadUInt64BigEndian(plaintext[offset..]);
                offset += 8;
            }
            if (!named || tenant is null || user is null || offset != plaintext.Length
                || expiresSeconds < DateTimeOffset.MinValue.ToUnixTimeSeconds() || expiresSeconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
            {
                return CookieOpenResult.Malformed;
            }

            var expiresAt = DateTimeOffset.FromUnixTimeSeconds(expiresSeconds);
            if (expiresAt <= _time.GetUtcNow())
            {
                return CookieOpenResult.Expired;
            }

            ticket = new SessionTicket(sessionId, tenant, user, expiresAt, credential);
            return CookieOpenResult.Ok;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private static int WriteName(Span<byte> destination, string name)
    {
        int length = StrictUtf8.GetBytes(name, destination[2..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)length);
        return 2 + length;
    }

    private static bool TryReadName(ReadOnlySpan<byte> plaintext, ref int offset, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? name)
    {
        name = null;
        if (offset + 2 > plaintext.Length)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(plaintext[offset..]);
        offset += 2;
        if (length > MaxNameBytes || offset + length > plaintext.Length)
        {
            return false;
        }

        try
        {
            name = StrictUtf8.GetString(plaintext.Slice(offset, length));
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        offset += length;
        return true;
    }
}
