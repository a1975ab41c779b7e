using Isotun.State.Cluster;
using Isotun.UnitTests.InProcess;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// Two nodes on an etcd that speaks TLS with client certificates, stopped and started again: a revocation made
/// while it was down waits, and reaches the other node once it is back; so does one made after.
/// </summary>
public sealed class EtcdTlsRestartTests : IAsyncLifetime
{
    private readonly EtcdTlsServer _etcd = new();

    public Task InitializeAsync() => _etcd.InitializeAsync();

    public Task DisposeAsync() => _etcd.DisposeAsync();

    [SkippableFact]
    public async Task Revocations_reach_the_other_node_after_etcd_restarts()
    {
        await using var a = await SharedState.JoinAsync(_etcd.Connect(_etcd.Ca), "/c", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(_etcd.Connect(_etcd.Ca), "/c", "node-b", 32, NullLogger.Instance);
        a.RevokeUser("acme", "before");
        await Eventually.True(() => b.IsUserRevoked("acme", "before"), "node b did not see a revocation before the restart");

        _etcd.Server.Stop();
        await Eventually.True(() => !a.Status.Connected, "node a did not notice etcd was down");
        a.RevokeUser("acme", "during");
        await _etcd.Server.StartAsync();

        await Eventually.True(() => b.IsUserRevoked("acme", "during"), "node b did not see the revocation made while etcd was down");
        a.RevokeUser("acme", "after");
        await Eventually.True(() => b.IsUserRevoked("acme", "after"), "node b did not see a revocation made after the restart");
    }
}
