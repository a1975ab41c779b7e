using System.Text;

namespace Isotun.State.Cluster;

/// <summary>
/// What every <see cref="IKeyValueStore"/> refuses, checked before a call reaches the store, so both implementations
/// refuse the same inputs with the same words. The caps keep the store a place for control-plane records (well
/// under etcd's default 1.5 MiB request limit), not for blobs.
/// </summary>
public static class KeyValueLimits
{
    /// <summary>A key or prefix is at most this many bytes of UTF-8.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>A value is at most this many bytes.</summary>
    public const int MaxValueBytes = 64 * 1024;

    /// <summary>A commit has at most this many conditions, and at most this many writes (etcd's default cap is 128 operations).</summary>
    public const int MaxOperations = 64;

    public static readonly TimeSpan MinTtl = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(1);

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The key as UTF-8; throws <see cref="ArgumentException"/> for an empty, too long or malformed (lone surrogate) key.</summary>
    public static byte[] KeyBytes(string key, string what = "key")
    {
        ArgumentNullException.ThrowIfNull(key, what);
        if (key.Length == 0) throw new ArgumentException($"the {what} is empty; a {what} names at least one character", what);
        byte[] bytes;
        try
        {
            bytes = Strict.GetBytes(key);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"the {what} is not well-formed text (a lone surrogate): it has no UTF-8 form", what, e);
        }
        if (bytes.Length > MaxKeyBytes)
            throw new ArgumentException($"the {what} is {bytes.Length} bytes of UTF-8; the store takes at most {MaxKeyBytes}", what);
        return bytes;
    }

    /// <summary>The first key after every key that starts with <paramref name="prefix"/> (its UTF-8 bytes): the end of a prefix range.</summary>
    public static byte[] PrefixEnd(byte[] prefix)
    {
        // UTF-8 never holds 0xff, so the last byte can always be raised.
        var end = (byte[])prefix.Clone();
        end[^1]++;
        return end;
    }

    /// <summary>Decodes a stored key (written by <see cref="KeyBytes"/>).</summary>
    public static string KeyText(ReadOnlySpan<byte> bytes) => Strict.GetString(bytes);

    public static void CheckValue(ReadOnlyMemory<byte> value, string key)
    {
        if (value.Length > MaxValueBytes)
            throw new ArgumentException($"the value for {key} is {value.Length} bytes; the store takes at most {MaxValueBytes}", nameof(value));
    }

    /// <summary>Checks a commit's conditions and writes: valid keys and values, within the caps, no key written twice.</summary>
    public static void CheckCommit(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes)
    {
        ArgumentNullException.ThrowIfNull(conditions);
        ArgumentNullException.ThrowIfNull(writes);
        if (conditions.Count > MaxOperations || writes.Count > MaxOperations)
            throw new ArgumentException($"a commit has {conditions.Count} conditions and {writes.Count} writes; the store takes at most {MaxOperations} of each", nameof(writes));
        foreach (var c in conditions)
        {
            KeyBytes(c.Key);
            if (c.ModRevision < 0) throw new ArgumentOutOfRangeException(nameof(conditions), $"the condition on {c.Key} names revision {c.ModRevision}; revisions are 0 (absent) or more");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var w in writes)
        {
            KeyBytes(w.Key);
            if (!seen.Add(w.Key)) throw new ArgumentException($"the commit writes {w.Key} twice", nameof(writes));
            if (w.Lease < 0) throw new ArgumentOutOfRangeException(nameof(writes), $"the put of {w.Key} names lease {w.Lease}; leases are 0 (none) or more");
            CheckValue(w.Value, w.Key);
        }
    }

    /// <summary>The TTL in whole seconds (rounded up); throws outside <see cref="MinTtl"/> to <see cref="MaxTtl"/>.</summary>
    public static long TtlSeconds(TimeSpan ttl)
    {
        if (ttl < MinTtl || ttl > MaxTtl)
            throw new ArgumentOutOfRangeException(nameof(ttl), $"a lease lives {ttl}; the store takes {MinTtl} to {MaxTtl}");
        return (long)Math.Ceiling(ttl.TotalSeconds);
    }
}
