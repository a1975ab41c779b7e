using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;
using Isotun.Server;
using Isotun.State.Cluster;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A reload changes a running tenant's pools when every live lease fits in the new ones, and refuses with the leases
/// in the way otherwise: the live sessions keep their addresses and data, new sessions lease from the new pools.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessPoolChangeTests(InProcessPki pki)
{
    private static TenantRuntime Runtime(InProcessServer server) => server.Server.TenantRuntimes.Single();

    [Fact]
    public async Task A_pool_that_holds_every_live_lease_applies_at_once_and_one_that_does_not_is_refused_with_the_leases_in_the_way()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tenant = Runtime(server);
        var live = await InProcessClient.ConnectAsync(server, server.Options());
        Assert.Equal("10.77.0.2", live.Address.ToString());

        // Grown around the live lease: applied, with the same gateway on a wider prefix; the session does not notice.
        Assert.Null(tenant.TryApply(tenant.Config with { Pool = IpNetwork.Parse("10.77.0.0/23") }));
        Assert.Equal("10.77.0.0/23", tenant.Pool.ToString());
        Assert.Equal((IPAddress.Parse("10.77.0.1"), IPAddress.Parse("10.77.0.1")), server.Network().Readdressed.Single());
        Assert.True(tenant.IsClientAddress(IpKey.FromAddress(IPAddress.Parse("10.77.1.9"))));
        live.RoundTrip(server);

        // Moved away from the live lease: refused, naming the lease and its user, and nothing changes.
        var refused = tenant.TryApply(tenant.Config with { Pool = IpNetwork.Parse("10.78.0.0/24") });
        Assert.NotNull(refused);
        Assert.Contains("10.77.0.2 (" + InProcessPki.User, refused);
        Assert.Contains("isotun kick", refused);
        Assert.Equal("10.77.0.0/23", tenant.Pool.ToString());
        Assert.Single(server.Network().Readdressed);
        live.RoundTrip(server);

        // Once the session ended, the move applies: the TUN changes gateway, and the next session leases from the new
        // pool (its sticky address is outside it) and is told the new netmask.
        Assert.Equal(Isotun.Client.ClientExitCode.Ok, await live.StopAsync());
        await Eventually.True(() => server.Server.Sessions.Count == 0, "the stopped client's session did not end");
        Assert.Null(tenant.TryApply(tenant.Config with { Pool = IpNetwork.Parse("10.78.0.0/24"), Pool6 = IpNetwork.Parse("fd00:78::/64") }));
        Assert.Equal((IPAddress.Parse("10.77.0.1"), IPAddress.Parse("10.78.0.1")), server.Network().Readdressed[1]);
        Assert.Equal(((IPAddress?)null, IPAddress.Parse("fd00:78::1")), server.Network().Readdressed[2]);
        await using var next = await InProcessClient.ConnectAsync(server, server.Options());
        Assert.Equal("10.78.0.2", next.Address.ToString());
        Assert.Equal("255.255.255.0", next.Parameters.Netmask?.ToString());
        Assert.Equal("fd00:78::2", next.Parameters.Address6?.ToString());
        Assert.False(tenant.IsClientAddress(IpKey.FromAddress(IPAddress.Parse("10.77.0.9"))));
        next.RoundTrip(server);
    }

    [Fact]
    public async Task A_sticky_address_left_outside_a_new_pool_reserves_nothing_in_it()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tenant = Runtime(server);
        // A user who left, whose sticky address the new pool does not hold.
        server.Server.State.SaveLease(tenant.Name, "gone", IPAddress.Parse("10.77.0.5"), null);
        Assert.Null(tenant.TryApply(tenant.Config with { Pool = IpNetwork.Parse("10.80.0.0/24") }));
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        Assert.Equal("10.80.0.2", client.Address.ToString()); // the new pool's first address, not one kept for "gone"
    }

    [Fact]
    public async Task A_lease_made_between_the_check_and_the_commit_outside_the_new_pool_is_marked_for_the_server_to_end()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tenant = Runtime(server);
        Assert.Null(tenant.Prepare(tenant.Config with { Pool = IpNetwork.Parse("10.79.0.0/24") }, out var commit));
        await using var raced = await InProcessClient.ConnectAsync(server, server.Options());
        var session = server.Session(raced.Address)!;
        Assert.False(tenant.HoldsAddressOutsidePools(session));
        commit!();
        Assert.True(tenant.HoldsAddressOutsidePools(session));
        Assert.Equal(1, server.Server.Sessions.KickWhere(s => s.Tenant.HoldsAddressOutsidePools(s) ? "outside" : null));
    }

    [Fact]
    public async Task A_cluster_nodes_pool_is_not_changed_by_one_node_alone()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tenant = Runtime(server);
        using var dir = new Isotun.UnitTests.Security.TempDirectory();
        await using var shared = await SharedState.JoinAsync(new SqliteKeyValueStore(dir.File("cluster.db")), "/isotun-test/", "node-a", 32, NullLogger.Instance);
        tenant.Cluster = new ClusterAddresses(shared, tenant.Name, tenant.Pool);
        var refused = tenant.TryApply(tenant.Config with { Pool = IpNetwork.Parse("10.77.0.0/23") });
        Assert.Contains("restart every node", refused);
        Assert.Equal("10.77.0.0/24", tenant.Pool.ToString());
    }
}
