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
}
