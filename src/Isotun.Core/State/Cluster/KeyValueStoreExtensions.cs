namespace Isotun.State.Cluster;

/// <summary>The one-key commits: compare-and-put and compare-and-delete.</summary>
public static class KeyValueStoreExtensions
{
    /// <summary>
    /// Puts <paramref name="value"/> at <paramref name="key"/> only if the key's mod revision is
    /// <paramref name="expectedRevision"/> (0: only if the key is absent). Exactly one of several writers that expect
    /// the same revision succeeds.
    /// </summary>
    public static Task<CommitResult> CompareAndPutAsync(this IKeyValueStore store, string key, ReadOnlyMemory<byte> value,
        long expectedRevision, long lease = 0, CancellationToken ct = default) =>
        store.CommitAsync([new KeyCondition(key, expectedRevision)], [KeyWrite.Put(key, value, lease)], ct);

    /// <summary>Deletes <paramref name="key"/> only if its mod revision is <paramref name="expectedRevision"/> (at least 1).</summary>
    public static Task<CommitResult> CompareAndDeleteAsync(this IKeyValueStore store, string key, long expectedRevision, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(expectedRevision);
        return store.CommitAsync([new KeyCondition(key, expectedRevision)], [KeyWrite.Delete(key)], ct);
    }
}
