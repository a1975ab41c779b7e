using dotnet_etcd;
using Etcdserverpb;
using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The key-value store contract on a real etcd (skipped, with the reason, where etcd is not installed).</summary>
[Collection(EtcdCollection.Name)]
public sealed class EtcdKeyValueStoreTests(EtcdServer etcd) : KeyValueStoreContract
{
    protected override IKeyValueStore Connect() => etcd.Connect();

    [SkippableFact]
    public async Task An_unreachable_etcd_fails_with_unavailable_and_names_the_endpoint()
    {
        Skip.If(etcd.SkipReason is not null, etcd.SkipReason);
        await using var store = new EtcdKeyValueStore("http://127.0.0.1:1");

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync("/k"));

        Assert.Equal(KeyValueStoreError.Unavailable, e.Error);
        Assert.Contains("127.0.0.1:1", e.Message);
    }

    [SkippableFact]
    public async Task A_watch_from_before_etcds_compaction_fails_as_compacted()
    {
        var store = Store();
        var first = await store.CompareAndPutAsync(P + "k", B("1"), 0);
        var second = await store.CompareAndPutAsync(P + "k", B("2"), first.Revision);
        using (var raw = new EtcdClient(etcd.Endpoint))
            await raw.CompactAsync(new CompactionRequest { Revision = second.Revision, Physical = true });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(async () =>
        {
            await foreach (var _ in store.WatchAsync(P, first.Revision, cts.Token)) { }
        });

        Assert.Equal(KeyValueStoreError.Compacted, e.Error);
        Assert.Contains($"revision {second.Revision}", e.Message);
    }
}
