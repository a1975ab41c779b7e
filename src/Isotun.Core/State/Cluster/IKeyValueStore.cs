namespace Isotun.State.Cluster;

/// <summary>
/// A versioned key-value store shared by the nodes of a cluster, shaped after etcd's v3 API: every change gets the
/// next store-wide revision; writes are conditional on the mod revisions of keys (0 meaning absent); leases expire
/// unless kept alive and take their keys with them; a watch replays a key prefix's changes from a revision on.
/// Keys are strings (UTF-8 on the wire), values bytes, both capped (<see cref="KeyValueLimits"/>).
/// Implementations: <see cref="SqliteKeyValueStore"/> (one node, the default) and <see cref="EtcdKeyValueStore"/>.
/// Control plane only: every call may wait on a disk or a network. Safe to call from several threads.
/// </summary>
public interface IKeyValueStore : IAsyncDisposable
{
    /// <summary>The key's value and revisions, or null when it is absent (never written, deleted, or its lease ended).</summary>
    Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default);

    /// <summary>Every key that starts with <paramref name="prefix"/>, in key order (byte order of the UTF-8), with the revision read.</summary>
    Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default);

    /// <summary>
    /// Applies <paramref name="writes"/> in one revision if every condition holds (each key's mod revision is the one
    /// given, 0 meaning absent); otherwise changes nothing. With no conditions the writes always apply. A put may
    /// attach a lease; a put naming a lease that does not exist (any more) fails with
    /// <see cref="KeyValueStoreError.LeaseNotFound"/> and writes nothing.
    /// </summary>
    Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default);

    /// <summary>
    /// A new lease that ends <paramref name="ttl"/> (whole seconds, rounded up) after it was granted or last kept
    /// alive. etcd may raise a short TTL to its own minimum (about 1.5 × its election timeout).
    /// </summary>
    Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default);

    /// <summary>Ends a lease now and deletes its keys. Revoking a lease that already ended does nothing.</summary>
    Task RevokeLeaseAsync(long lease, CancellationToken ct = default);

    /// <summary>
    /// Keeps <paramref name="lease"/> alive in the background (a renewal every third of its TTL) until the result is
    /// disposed, which is to happen before the store is disposed.
    /// </summary>
    ILeaseKeepAlive KeepAlive(long lease);

    /// <summary>
    /// The changes to keys under <paramref name="prefix"/> with a revision at or after <paramref name="fromRevision"/>
    /// (0: only changes after the call), in revision order, deletes by lease expiry included, until
    /// <paramref name="ct"/> is cancelled. Fails with <see cref="KeyValueStoreError.Compacted"/> when the store no
    /// longer keeps that revision's history. Read <see cref="RangeResult.Revision"/> + 1 after a range to miss nothing.
    /// With <paramref name="progress"/>, also <see cref="KeyValueEventKind.Progress"/> now and then while nothing under
    /// the prefix changes: every change up to its revision has been delivered, so a watch opened again may start after
    /// it (a quiet prefix of a busy store would otherwise fall behind the store's compaction).
    /// </summary>
    IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, CancellationToken ct = default, bool progress = false);
}
