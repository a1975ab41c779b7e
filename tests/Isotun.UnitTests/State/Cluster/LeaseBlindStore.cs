using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A store whose keepalives never renew and never report a lease lost: the in-memory way to get a node whose lease
/// the store dropped while its keepalive said nothing (a keepalive that died silently did this once).
/// </summary>
internal sealed class LeaseBlindStore(IKeyValueStore inner) : DelegatingStore(inner)
{
    public override ILeaseKeepAlive KeepAlive(long lease) => new Blind(lease);

    private sealed class Blind(long lease) : ILeaseKeepAlive
    {
        public long Lease => lease;

        public Task Lost { get; } = new TaskCompletionSource().Task;

        public Exception? Failure => null;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
