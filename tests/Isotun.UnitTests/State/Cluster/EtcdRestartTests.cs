using System.Text;
using Isotun.State.Cluster;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// etcd stopped (as an operator stops it) and started again under a kept-alive lease: the keepalive either goes on
/// (etcd restores its leases) or reports the lease lost. It never stops renewing without a word, which would leave a
/// node holding a lease etcd no longer knows.
/// </summary>
public sealed class EtcdRestartTests : IAsyncLifetime
{
    private readonly EtcdServer _etcd = new();

    public Task InitializeAsync() => _etcd.InitializeAsync();

    public Task DisposeAsync() => _etcd.DisposeAsync();

    [SkippableFact]
    public async Task A_keepalive_goes_on_after_etcd_restarts_or_reports_its_lease_lost()
    {
        await using var store = _etcd.Connect();
        var ttl = TimeSpan.FromSeconds(3); // renewed every second
        var lease = await store.GrantLeaseAsync(ttl);
        await store.CompareAndPutAsync("/restart/held", Encoding.UTF8.GetBytes("x"), 0, lease);
        await using var keepAlive = store.KeepAlive(lease);
        await Task.Delay(1500); // between two renewals

        _etcd.Stop();
        await Task.Delay(ttl + TimeSpan.FromSeconds(1));
        await _etcd.StartAsync();

        // Long enough for the lease to run out if nobody renews it.
        await Task.Delay(ttl * 3);
        if (keepAlive.Lost.IsCompleted) return;
        Assert.True(await store.GetAsync("/restart/held") is not null,
            "the lease ran out while its keepalive said nothing: it stopped renewing without reporting the lease lost");
        await Task.Delay(ttl * 2);
        Assert.True(keepAlive.Lost.IsCompleted || await store.GetAsync("/restart/held") is not null, "the keepalive stopped renewing later on");
    }
}
