using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The block allocator's property on a real etcd: each node its own client (skipped, with the reason, where etcd is not installed).</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdBlockAllocatorPropertyTests(EtcdServer etcd) : BlockAllocatorProperty
{
    protected override IKeyValueStore Connect() => etcd.Connect();
}
