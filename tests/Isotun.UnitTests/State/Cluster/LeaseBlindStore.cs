using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A store whose keepalives never renew and never report a lease lost: the in-memory way to get a node whose lease
/// the store dropped while its keepalive said nothing (a keepalive that died silently did this once).
/// </summary>
internal sealed class LeaseBlindStore(IKeyValueStore inner) : IKeyValueStore
{
    public Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default) => inner.GetAsync(key, ct);

    public Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default) => inner.RangeAsync(prefix, ct);

    public Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default) =>
        inner.CommitAsync(conditions, writes, ct);

    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default) => inner.GrantLeaseAsync(ttl, ct);

    public Task RevokeLeaseAsync(long lease, CancellationToken ct = default) => inner.RevokeLeaseAsync(lease, ct);

    public ILeaseKeepAlive KeepAlive(long lease) => new Blind(lease);

    public IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, CancellationToken ct = default) =>
        inner.WatchAsync(prefix, fromRevision, ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private sealed class Blind(long lease) : ILeaseKeepAlive
    {
        public long Lease => lease;

        public Task Lost { get; } = new TaskCompletionSource().Task;

        public Exception? Failure => null;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
