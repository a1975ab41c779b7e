using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Isotun.Protocol.Cookies;

/// <summary>
/// One cookie key: its id (carried in each cookie it seals), its 32 bytes, and when it begins to seal (on a cluster, a
/// little after it was made, so that every node knows it before the first cookie it seals reaches one).
/// </summary>
public sealed record CookieKey(uint Id, byte[] Key, DateTimeOffset Created);

/// <summary>
/// The cookie keys a server opens cookies with: the newest seals, and each older one opens the cookies it sealed until
/// they have all expired. Immutable: <see cref="Rotated"/> makes the next ring.
/// Stored form (a key file, or a value in the cluster's store): one 44-byte record per key, newest first:
/// <c>id (u32 BE) | created, Unix seconds (i64 BE) | key (32)</c>. A bare 32-byte key (an older key file) is a ring of
/// one key, id 0.
/// </summary>
public sealed class CookieKeyRing
{
    private const int RecordLength = 4 + 8 + CookieSealer.KeyLength;

    /// <summary>Most keys a ring holds: far more than a week of hourly rotations.</summary>
    public const int MaxKeys = 256;

    private CookieKeyRing(IReadOnlyList<CookieKey> keys) => Keys = keys;

    /// <summary>Newest first; never empty.</summary>
    public IReadOnlyList<CookieKey> Keys { get; }

    /// <summary>The newest key.</summary>
    public CookieKey Current => Keys[0];

    /// <summary>The key that seals at <paramref name="now"/>: the newest that has begun (the oldest, if none has).</summary>
    public CookieKey SealingKey(DateTimeOffset now)
    {
        foreach (var key in Keys)
            if (key.Created <= now) return key;
        return Keys[^1];
    }

    /// <summary>A ring of one fresh key (id 0).</summary>
    public static CookieKeyRing Create(DateTimeOffset now) => new([new CookieKey(0, RandomNumberGenerator.GetBytes(CookieSealer.KeyLength), now)]);

    /// <summary>A ring of one given key (id 0), e.g. a key file from before rings.</summary>
    public static CookieKeyRing Of(byte[] key, DateTimeOffset created)
    {
        if (key.Length != CookieSealer.KeyLength) throw new ArgumentException($"A cookie key is {CookieSealer.KeyLength} bytes.", nameof(key));
        return new([new CookieKey(0, key.ToArray(), created)]);
    }

    /// <summary>The key with this id, if the ring still holds it.</summary>
    public CookieKey? Find(uint id)
    {
        foreach (var key in Keys)
            if (key.Id == id) return key;
        return null;
    }

    /// <summary>Whether the current key is <paramref name="every"/> old or older.</summary>
    public bool RotationDue(DateTimeOffset now, TimeSpan every) => now - Current.Created >= every;

    /// <summary>
    /// The ring with a fresh key that begins to seal <paramref name="activation"/> after <paramref name="now"/>, keeping
    /// each older key while cookies it sealed may still be open: a key stops sealing when the next one begins, and its
    /// last cookie expires <paramref name="cookieLifetime"/> later.
    /// </summary>
    public CookieKeyRing Rotated(DateTimeOffset now, TimeSpan cookieLifetime, TimeSpan activation = default)
    {
        var keys = new List<CookieKey> { new(Current.Id + 1, RandomNumberGenerator.GetBytes(CookieSealer.KeyLength), now + activation) };
        for (int i = 0; i < Keys.Count && keys.Count < MaxKeys; i++)
        {
            var retired = keys[0].Created;
            if (i > 0) retired = Keys[i - 1].Created; // when its successor began to seal
            if (retired + cookieLifetime > now) keys.Add(Keys[i]);
        }
        return new(keys);
    }

    public byte[] ToBytes()
    {
        var bytes = new byte[Keys.Count * RecordLength];
        for (int i = 0; i < Keys.Count; i++)
        {
            var record = bytes.AsSpan(i * RecordLength, RecordLength);
            BinaryPrimitives.WriteUInt32BigEndian(record, Keys[i].Id);
            BinaryPrimitives.WriteInt64BigEndian(record[4..], Keys[i].Created.ToUnixTimeSeconds());
            Keys[i].Key.CopyTo(record[12..]);
        }
        return bytes;
    }

    /// <summary>Reads a stored ring; null, with the reason, when the bytes are not one.</summary>
    public static CookieKeyRing? Parse(ReadOnlySpan<byte> bytes, DateTimeOffset legacyCreated, out string? error)
    {
        error = null;
        if (bytes.Length == CookieSealer.KeyLength) return Of(bytes.ToArray(), legacyCreated);
        if (bytes.Length == 0 || bytes.Length % RecordLength != 0 || bytes.Length / RecordLength > MaxKeys)
        {
            error = $"{bytes.Length} bytes: not a cookie key ({CookieSealer.KeyLength} bytes) nor a ring of {RecordLength}-byte records (at most {MaxKeys})";
            return null;
        }
        var keys = new List<CookieKey>();
        for (int offset = 0; offset < bytes.Length; offset += RecordLength)
        {
            var record = bytes.Slice(offset, RecordLength);
            uint id = BinaryPrimitives.ReadUInt32BigEndian(record);
            long created = BinaryPrimitives.ReadInt64BigEndian(record[4..]);
            if (created < 0 || created > DateTimeOffset.MaxValue.ToUnixTimeSeconds() || keys.Any(k => k.Id == id)
                || (keys.Count > 0 && id >= keys[^1].Id))
            {
                error = $"record {keys.Count}: a duplicate, out-of-order id or a bad time";
                return null;
            }
            keys.Add(new CookieKey(id, record[12..].ToArray(), DateTimeOffset.FromUnixTimeSeconds(created)));
        }
        return new(keys);
    }
}
