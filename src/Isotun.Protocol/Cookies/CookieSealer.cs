using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Protocol.Cookies;

/// <summary>
/// Seals <see cref="SessionTicket"/>s into the <c>webvpn</c> cookie with AES-256-GCM, so the server needs no
/// lookup to trust a cookie and clients can neither read nor forge one. Format (base64url, unpadded):
/// <c>version 3 | key id (u32 BE) | nonce (12) | ciphertext | tag (16)</c> with AAD <c>"isotun-cookie-v1"</c>; the
/// plaintext is <c>session id (16) | expiry unix seconds (i64 BE) | u16 BE length + UTF-8 tenant | u16 BE length +
/// UTF-8 user | credential (u64 BE)</c>. The key id names the key of the <see cref="CookieKeyRing"/> that sealed it.
/// Versions 2 (no key id) and 1 (no key id nor credential, which opens as 0) are still opened, with key 0.
/// Thread-safe: a fresh <see cref="AesGcm"/> is used per call, and the ring is swapped whole (<see cref="Use"/>).
/// </summary>
public sealed class CookieSealer
{
    /// <summary>Key length in bytes (AES-256).</summary>
    public const int KeyLength = 32;

    /// <summary>Longest cookie string accepted by <see cref="TryOpen"/>.</summary>
    public const int MaxCookieLength = 1024;

    /// <summary>Longest tenant or user name, in UTF-8 bytes, that fits in a cookie.</summary>
    public const int MaxNameBytes = 256;

    private const byte FormatVersion = 3, FormatVersion2 = 2, FormatVersion1 = 1;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const int KeyIdLength = 4;
    private const int Overhead = 1 + NonceLength + TagLength; // versions 1 and 2; version 3 adds the key id
    private const int FixedPlaintext = 16 + 8 + 2 + 2;

    private static readonly byte[] AssociatedData = "isotun-cookie-v1"u8.ToArray();
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private volatile CookieKeyRing _ring;
    private readonly TimeProvider _time;

    /// <summary>Creates a sealer for one 32-byte key (a ring of one, id 0).</summary>
    public CookieSealer(ReadOnlySpan<byte> key, TimeProvider time)
        : this(key.Length == KeyLength ? CookieKeyRing.Of(key.ToArray(), DateTimeOffset.UnixEpoch) : throw new ArgumentException($"Cookie key must be {KeyLength} bytes.", nameof(key)), time)
    {
    }

    /// <summary>Creates a sealer that seals with the ring's current key and opens with any of its keys.</summary>
    public CookieSealer(CookieKeyRing ring, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(time);
        _ring = ring;
        _time = time;
    }

    /// <summary>The keys in use.</summary>
    public CookieKeyRing Ring => _ring;

    /// <summary>
    /// Swaps in another ring (after a rotation): cookies sealed from now on carry its sealing key. A ring older than the
    /// one in use (a smaller newest id, from a caller that raced a newer rotation) is ignored.
    /// </summary>
    public void Use(CookieKeyRing ring)
    {
        ArgumentNullException.ThrowIfNull(ring);
        while (true)
        {
            var known = _ring;
            if (known.Current.Id > ring.Current.Id || Interlocked.CompareExchange(ref _ring, ring, known) == known) return;
        }
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

        var key = _ring.SealingKey(_time.GetUtcNow());
        var sealedBytes = new byte[Overhead + KeyIdLength + plaintextLength];
        sealedBytes[0] = FormatVersion;
        BinaryPrimitives.WriteUInt32BigEndian(sealedBytes.AsSpan(1), key.Id);
        var body = sealedBytes.AsSpan(1 + KeyIdLength);
        var nonce = body[..NonceLength];
        RandomNumberGenerator.Fill(nonce);
        var ciphertext = body.Slice(NonceLength, plaintextLength);
        var tag = body.Slice(NonceLength + plaintextLength, TagLength);
        using (var aes = new AesGcm(key.Key, TagLength))
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

        byte version = raw.Length > 0 ? raw[0] : (byte)0;
        int header = version == FormatVersion ? 1 + KeyIdLength : 1;
        if (version is not (FormatVersion or FormatVersion2 or FormatVersion1) || raw.Length < header + NonceLength + TagLength + FixedPlaintext)
        {
            return CookieOpenResult.Malformed;
        }

        // A key the ring no longer holds sealed only cookies that have expired since; or the id is forged.
        uint keyId = version == FormatVersion ? BinaryPrimitives.ReadUInt32BigEndian(raw[1..]) : 0;
        if (_ring.Find(keyId) is not { } key)
        {
            return CookieOpenResult.Tampered;
        }

        var body = raw[header..];
        int plaintextLength = body.Length - NonceLength - TagLength;
        var nonce = body[..NonceLength];
        var ciphertext = body.Slice(NonceLength, plaintextLength);
        var tag = body.Slice(NonceLength + plaintextLength, TagLength);
        Span<byte> plaintext = stackalloc byte[MaxCookieLength];
        plaintext = plaintext[..plaintextLength];
        try
        {
            using var aes = new AesGcm(key.Key, TagLength);
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
            if (named && version != FormatVersion1 && offset + 8 == plaintext.Length)
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
