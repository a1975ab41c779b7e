using System.Text;

namespace Isotun.State.Cluster;

/// <summary>
/// The tenants a cluster shares (<c>cluster.share-tenants</c>): one YAML document at <c>{prefix}/config/tenants</c>,
/// and the revision that wrote it. The store holds the text as it was published; each node reads it against its own
/// files (password files, CAs) and applies it, or keeps the tenants it has and says why.
/// </summary>
public sealed record SharedTenants(string Yaml, long Revision)
{
    /// <summary>The key under the cluster's prefix (which ends with '/').</summary>
    public const string KeyName = "config/tenants";

    /// <summary>The tenants now in the store, or null when none were published.</summary>
    public static async Task<SharedTenants?> ReadAsync(IKeyValueStore store, string prefix, CancellationToken ct = default) =>
        await store.GetAsync(Key(prefix), ct).ConfigureAwait(false) is { } entry ? Of(entry) : null;

    /// <summary>
    /// Publishes a tenants document (checked by the caller). With <paramref name="expectedRevision"/>, only if the
    /// document in the store is still the one of that revision (0: only if none was published): the result then says
    /// whether it was written, and the store's revision when it was not.
    /// </summary>
    public static Task<CommitResult> PublishAsync(IKeyValueStore store, string prefix, string yaml, long? expectedRevision = null, CancellationToken ct = default)
    {
        var value = Encoding.UTF8.GetBytes(yaml);
        string key = Key(prefix);
        return expectedRevision is { } expected
            ? store.CompareAndPutAsync(key, value, expected, ct: ct)
            : store.CommitAsync([], [KeyWrite.Put(key, value)], ct);
    }

    internal static SharedTenants Of(KeyValueEntry entry) => new(Encoding.UTF8.GetString(entry.Value.Span), entry.ModRevision);

    private static string Key(string prefix) => prefix.TrimEnd('/') + "/" + KeyName;
}
