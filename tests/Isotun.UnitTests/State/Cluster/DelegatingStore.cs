using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>A store that passes every call to <paramref name="inner"/>: the base of the tests' stores that change one thing.</summary>
internal abstract class DelegatingStore(IKeyValueStore inner) : IKeyValueStore
{
    public virtual Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default) => inner.GetAsync(key, ct);

    public virtual Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default) => inner.RangeAsync(prefix, ct);

    public virtual Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default) =>
        inner.CommitAsync(conditions, writes, ct);

    public virtual Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) => inner.GrantLeaseAsync(ttl, ct);

    public virtual Task RevokeLeaseAsync(long lease, CancellationToken ct = default) => inner.RevokeLeaseAsync(lease, ct);

    public virtual ILeaseKeepAlive KeepAlive(long lease) => inner.KeepAlive(lease);

    public virtual IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, CancellationToken ct = default, bool progress = false) =>
        inner.WatchAsync(prefix, fromRevision, ct, progress);

    public virtual ValueTask DisposeAsync() => inner.DisposeAsync();
}
