using Isotun.Protocol.Addressing;
using System.Net;
using Isotun.Protocol.Ip;
using Isotun.Server;
using Isotun.State;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Server;

/// <summary>Leasing against the in-memory store: stickiness, restarts, expiry, concurrent sessions.</summary>
public class TenantRuntimeLeaseTests
{
    // 10.10.0.0/29: gateway .1, leasable .2 to .6.
    private static TenantRuntime Runtime(IStateStore store, TimeSpan? lifetime = null, string? pool6 = "fd00:10::/120") =>
        TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/29", null) with { Pool6 = pool6 is null ? null : IpNetwork.Parse(pool6), LeaseLifetime = lifetime }, store);

    private static TenantRuntime Runtime(IStateStore store, TimeProvider clock, TimeSpan lifetime) =>
        new(TenantWorld.Tenant("acme", "10.10.0.0/29", null) with { Pool6 = IpNetwork.Parse("fd00:10::/120"), LeaseLifetime = lifetime }, store,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, clock);

    private static VpnSession Session(TenantRuntime t, string user) => new(Guid.NewGuid(), t, user, DateTimeOffset.UtcNow.AddHours(1));

    private static string Lease(TenantRuntime t, VpnSession s, string? asked = null)
    {
        Assert.True(t.TryLease(s, asked is null ? null : IPAddress.Parse(asked)), $"no lease for {s.User}");
        return $"{s.Address} {s.Address6}";
    }

    [Fact]
    public void A_user_gets_the_same_addresses_back_after_others_came_and_went()
    {
        var store = new MemoryStateStore();
        var t = Runtime(store);
        var alice = Session(t, "alice");
        Assert.Equal("10.10.0.2 fd00:10::2", Lease(t, alice));
        Assert.Equal(IPAddress.Parse("10.10.0.1"), t.Gateway);
        Assert.Equal(IPAddress.Parse("fd00:10::1"), t.Gateway6);

        // Alice's session ends; bob logs in and then leaves again; alice comes back.
        t.Release(alice);
        var bob = Session(t, "bob");
        Assert.Equal("10.10.0.3 fd00:10::3", Lease(t, bob));
        t.Release(bob);
        Assert.Equal("10.10.0.2 fd00:10::2", Lease(t, Session(t, "alice")));
        Assert.Equal("10.10.0.3 fd00:10::3", Lease(t, Session(t, "bob")));

        var stored = store.GetLease("acme", "alice")!;
        Assert.Equal(("10.10.0.2", "fd00:10::2"), (stored.Address!.ToString(), stored.Address6!.ToString()));
    }

    [Fact]
    public void A_pool_change_whose_sticky_leases_cannot_be_read_is_refused_before_anything_changes()
    {
        var store = new UnreadableLeases(new MemoryStateStore());
        var t = Runtime(store);
        var alice = Session(t, "alice");
        Lease(t, alice);
        store.Broken = true;
        var refused = t.Prepare(t.Config with { Pool = IpNetwork.Parse("10.10.0.0/28") }, out var commit);
        Assert.Null(commit);
        Assert.Contains("not applied", refused);
        Assert.Contains("database is locked", refused);
        Assert.Equal("10.10.0.0/29", t.Pool.ToString());

        // Read in the first half, the commit (which cannot fail) touches no disk.
        store.Broken = false;
        Assert.Null(t.Prepare(t.Config with { Pool = IpNetwork.Parse("10.10.0.0/28") }, out commit));
        store.Broken = true;
        commit!();
        Assert.Equal("10.10.0.0/28", t.Pool.ToString());
        Assert.Equal("10.10.0.2", alice.Address!.ToString());
    }

    /// <summary>A store whose leases cannot be read while <see cref="Broken"/> (a file locked by another program).</summary>
    private sealed class UnreadableLeases(IStateStore inner) : IStateStore
    {
        public volatile bool Broken;

        public IReadOnlyList<LeaseRecord> Leases(string tenant) =>
            Broken ? throw new Microsoft.Data.Sqlite.SqliteException("SQLite Error 5: 'database is locked'.", 5) : inner.Leases(tenant);

        public bool IsRevoked(Guid sessionId) => inner.IsRevoked(sessionId);

        public void Revoke(Guid sessionId, DateTimeOffset until) => inner.Revoke(sessionId, until);

        public LeaseRecord? GetLease(string tenant, string user) => inner.GetLease(tenant, user);

        public void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6) => inner.SaveLease(tenant, user, address, address6);

        public TrustRecord? GetTrust(string tenant) => inner.GetTrust(tenant);

        public void SaveTrust(string tenant, TrustRecord trust) => inner.SaveTrust(tenant, trust);

        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void A_session_asking_back_its_address_gets_it_and_cannot_take_anothers()
    {
        var t = Runtime(new MemoryStateStore());
        var alice = Session(t, "alice");
        var bob = Session(t, "bob");
        Lease(t, alice);
        Lease(t, bob);
        // The same session asks again (a reconnect): same addresses.
        Assert.Equal($"{alice.Address} {alice.Address6}", Lease(t, alice, alice.Address!.ToString()));
        // A new session of carol asking for bob's address gets a free one instead.
        var carol = Session(t, "carol");
        Lease(t, carol, bob.Address!.ToString());
        Assert.NotEqual(bob.Address, carol.Address);
        Assert.NotEqual(alice.Address, carol.Address);
    }

    [Fact]
    public void Stored_leases_are_reserved_after_a_restart()
    {
        var store = new MemoryStateStore();
        var before = Runtime(store);
        Lease(before, Session(before, "alice"));   // .2
        Lease(before, Session(before, "bob"));     // .3

        // A new server over the same store: newcomers get free addresses first, the owners their own.
        var after = Runtime(store);
        Assert.Equal("10.10.0.4 fd00:10::4", Lease(after, Session(after, "carol")));
        Assert.Equal("10.10.0.5 fd00:10::5", Lease(after, Session(after, "dave")));
        Assert.Equal("10.10.0.3 fd00:10::3", Lease(after, Session(after, "bob")));
        Assert.Equal("10.10.0.2 fd00:10::2", Lease(after, Session(after, "alice")));
    }

    [Fact]
    public void Expired_leases_are_not_reserved_after_a_restart()
    {
        // One clock for the store's stamps and the tenant's expiry: two hours pass between the runs.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new MemoryStateStore(clock);
        var before = Runtime(store, clock, lifetime: TimeSpan.FromHours(1));
        Lease(before, Session(before, "alice"));    // .2

        clock.Advance(TimeSpan.FromHours(2));
        var after = Runtime(store, clock, lifetime: TimeSpan.FromHours(1));
        Assert.Equal("10.10.0.2 fd00:10::2", Lease(after, Session(after, "carol")));
        Assert.NotEqual("10.10.0.2 fd00:10::2", Lease(after, Session(after, "alice")));
    }

    [Fact]
    public void Leases_within_their_lifetime_are_kept()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new MemoryStateStore(clock);
        var before = Runtime(store, clock, lifetime: TimeSpan.FromHours(3));
        Lease(before, Session(before, "alice"));

        clock.Advance(TimeSpan.FromHours(2));
        var after = Runtime(store, clock, lifetime: TimeSpan.FromHours(3));
        Assert.Equal("10.10.0.3 fd00:10::3", Lease(after, Session(after, "carol")));
        Assert.Equal("10.10.0.2 fd00:10::2", Lease(after, Session(after, "alice")));
    }

    [Fact]
    public void An_ended_session_owns_no_address_and_routes_nothing_and_never_takes_a_live_sessions_route()
    {
        var t = Runtime(new MemoryStateStore());
        var alice = Session(t, "alice");
        Lease(t, alice);
        t.Attach(alice);
        Assert.True(alice.Owns(alice.AddressKey));

        // Ended (a kick): marked before its addresses are released, so its connection, still reading for a moment
        // while the DISCONNECT goes out, cannot send from them once another user holds them.
        alice.MarkEnded();
        t.Detach(alice);
        t.Release(alice);
        Assert.False(alice.Owns(alice.AddressKey));
        Assert.False(alice.Owns(alice.AddressKey6));
        for (int i = 0; i < 4; i++) Lease(t, Session(t, "other" + i)); // .3 to .6: only alice's address is left
        var bob = Session(t, "bob");
        Lease(t, bob);
        Assert.Equal(alice.Address, bob.Address);
        t.Attach(bob);

        // A CONNECT that raced alice's end attaches her after all: nothing is routed to her, bob keeps his route.
        t.Attach(alice);
        Assert.Same(bob, t.RouteTo(bob.AddressKey));
        t.Detach(alice);
        Assert.Same(bob, t.RouteTo(bob.AddressKey));
    }

    [Fact]
    public void A_second_live_session_of_one_user_gets_other_addresses()
    {
        var t = Runtime(new MemoryStateStore());
        var first = Session(t, "alice");
        Lease(t, first);
        t.Attach(first);
        var second = Session(t, "alice");
        Lease(t, second);
        Assert.NotEqual(first.Address, second.Address);
        Assert.NotEqual(first.Address6, second.Address6);
    }

    [Fact]
    public void A_second_session_of_one_user_gets_other_addresses_while_the_first_waits_for_a_reconnect()
    {
        // The first session lost its TCP connection (detached) but keeps its addresses for the reconnect.
        var t = Runtime(new MemoryStateStore());
        var first = Session(t, "alice");
        Lease(t, first);
        t.Attach(first);
        t.Detach(first);
        var second = Session(t, "alice");
        Lease(t, second);
        Assert.NotEqual(first.Address, second.Address);
        Assert.NotEqual(first.Address6, second.Address6);

        // When the second session ends, its address goes back, and the first one's stays taken.
        t.Release(second);
        var bob = Session(t, "bob");
        Lease(t, bob);
        Assert.NotEqual(first.Address, bob.Address);
        Assert.NotEqual(first.Address6, bob.Address6);
    }

    [Fact]
    public void A_second_session_asking_for_the_first_sessions_address_does_not_get_it()
    {
        var t = Runtime(new MemoryStateStore());
        var first = Session(t, "alice");
        Lease(t, first);
        var second = Session(t, "alice");
        Lease(t, second, first.Address!.ToString());
        Assert.NotEqual(first.Address, second.Address);
    }

    [Fact]
    public void An_exhausted_pool_refuses_and_returns_nothing_half_leased()
    {
        var t = Runtime(new MemoryStateStore());
        for (int i = 0; i < 5; i++) Lease(t, Session(t, "user" + i));
        var late = Session(t, "late");
        Assert.False(t.TryLease(late, null));
        Assert.False(late.HasAddresses);
    }

    [Fact]
    public void IPv4_only_tenants_lease_no_IPv6_address()
    {
        var t = Runtime(new MemoryStateStore(), pool6: null);
        var s = Session(t, "alice");
        Lease(t, s);
        Assert.Null(s.Address6);
        Assert.Null(t.Gateway6);
        Assert.Null(t.Pool6);
    }

    [Theory]
    [InlineData("10.10.0.2", true)]
    [InlineData("10.10.0.6", true)]
    [InlineData("10.10.0.1", false)]      // the gateway stays reachable
    [InlineData("10.10.0.8", false)]      // outside the pool
    [InlineData("10.20.0.2", false)]
    [InlineData("198.18.1.2", false)]
    [InlineData("fd00:10::2", true)]
    [InlineData("fd00:10::ff", true)]
    [InlineData("fd00:10::1", false)]
    [InlineData("fd00:10::100", false)]
    [InlineData("fd00:20::2", false)]
    public void IsClientAddress_covers_the_pools_but_not_the_gateways(string address, bool expected)
    {
        var t = Runtime(new MemoryStateStore());
        Assert.Equal(expected, t.IsClientAddress(IpKey.FromAddress(IPAddress.Parse(address))));
    }

    [Fact]
    public void Without_an_IPv6_pool_no_IPv6_address_is_a_client()
    {
        var t = Runtime(new MemoryStateStore(), pool6: null);
        Assert.False(t.IsClientAddress(IpKey.FromAddress(IPAddress.Parse("fd00:10::2"))));
        Assert.False(t.IsClientAddress(IpKey.FromAddress(IPAddress.Parse("::"))));
        Assert.True(t.IsClientAddress(IpKey.FromAddress(IPAddress.Parse("10.10.0.3"))));
    }

    [Fact]
    public void Sessions_own_only_their_own_addresses()
    {
        var t = Runtime(new MemoryStateStore());
        var alice = Session(t, "alice");
        var bob = Session(t, "bob");
        Lease(t, alice);
        Lease(t, bob);
        Assert.True(alice.Owns(alice.AddressKey));
        Assert.True(alice.Owns(alice.AddressKey6));
        Assert.False(alice.Owns(bob.AddressKey));
        Assert.False(alice.Owns(bob.AddressKey6));
        Assert.False(alice.Owns(IpKey.FromAddress(t.Gateway)));
    }

    [Fact]
    public void A_users_rate_limiters_are_shared_by_the_users_sessions()
    {
        var limited = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/29", null) with { RateLimit = 100_000 });
        var a = limited.LimitsFor("alice")!.Value;
        Assert.Same(a.Rx, limited.LimitsFor("alice")!.Value.Rx);
        Assert.NotSame(a.Rx, a.Tx);
        Assert.NotSame(a.Rx, limited.LimitsFor("bob")!.Value.Rx);
        Assert.Equal(100_000, a.Rx.Rate);
        Assert.Null(Runtime(new MemoryStateStore()).LimitsFor("alice"));
    }

    /// <summary>
    /// A reload's new rate shapes the sessions that have a limiter at once, and a user's sessions from before and after
    /// it still share one (two limiters, one per session, would give the user twice the rate); no rate frees them.
    /// </summary>
    [Fact]
    public void A_reloaded_rate_applies_to_live_sessions_and_stays_shared_by_the_users_sessions()
    {
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/29", null) with { RateLimit = 100_000 });
        var before = tenant.LimitsFor("alice")!.Value;
        Assert.Null(tenant.TryApply(tenant.Config with { RateLimit = 200_000 }));
        Assert.Equal((200_000L, 200_000L), (before.Rx.Rate, before.Tx.Rate));
        Assert.Same(before.Rx, tenant.LimitsFor("alice")!.Value.Rx);

        Assert.Null(tenant.TryApply(tenant.Config with { RateLimit = 0 }));
        Assert.Equal((0L, 0L), (before.Rx.Rate, before.Tx.Rate));
        Assert.Null(tenant.LimitsFor("alice"));
    }
}

/// <summary>
/// Addresses on the nodes of a cluster: a user's IPv6 address follows the IPv4 one the cluster binds to them, and a
/// user's own address is served by one node at a time.
/// </summary>
public sealed class ClusterLeaseTests : IDisposable
{
    private readonly Isotun.UnitTests.Security.TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task<(Isotun.State.Cluster.SharedState Shared, TenantRuntime Tenant)> NodeAsync(string node)
    {
        var shared = await Isotun.State.Cluster.SharedState.JoinAsync(new Isotun.State.Cluster.SqliteKeyValueStore(_dir.File("cluster.db")), "/ipv6", node, 32,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/24", null) with { Pool6 = IpNetwork.Parse("fd00:10::/64") }, new MemoryStateStore());
        tenant.Cluster = new ClusterAddresses(shared, tenant.Name, tenant.Pool);
        return (shared, tenant);
    }

    private static async Task<VpnSession> ConnectAsync(TenantRuntime tenant, string user)
    {
        var session = new VpnSession(Guid.NewGuid(), tenant, user, DateTimeOffset.UtcNow.AddHours(1));
        var (address, refusal) = await tenant.ClusterAddressAsync(session, CancellationToken.None);
        Assert.True(address is not null, refusal);
        Assert.True(tenant.TryLease(session, address));
        return session;
    }

    [Fact]
    public async Task A_user_moving_to_another_node_keeps_both_addresses_whoever_that_node_served_first()
    {
        var (a, nodeA) = await NodeAsync("node-a");
        var (b, nodeB) = await NodeAsync("node-b");
        await using (a)
        await using (b)
        {
            var alice = await ConnectAsync(nodeA, "alice");
            // Node b served bob first: on its own it would have handed alice the next IPv6 address in its pool.
            var bob = await ConnectAsync(nodeB, "bob");
            var moved = await ConnectAsync(nodeB, "alice");

            Assert.Equal((alice.Address, alice.Address6), (moved.Address, moved.Address6));
            foreach (var s in new[] { alice, bob })
                Assert.Equal(IPAddress.Parse("fd00:10::" + s.Address!.GetAddressBytes()[3].ToString("x")), s.Address6);
            Assert.NotEqual(bob.Address6, moved.Address6);
        }
    }

    private static void Publish(Isotun.State.Cluster.SharedState shared, VpnSession session) =>
        shared.PublishSessions(new Dictionary<Guid, byte[]>
        {
            [session.Id] = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
                new ClusterSession(session.Id.ToString("N"), shared.Node, session.Tenant.Name, session.User, session.Address!.ToString(), null, DateTimeOffset.UtcNow, Connected: true),
                new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)),
        });

    /// <summary>
    /// While the cluster's store cannot be reached, a user this node served keeps the address it had here, but only if
    /// that was within <c>binding-ttl-days</c>: a binding unused for longer may have been released and its address
    /// given to another user meanwhile.
    /// </summary>
    [Theory]
    [InlineData(1, true)]
    [InlineData(40, false)]
    public async Task While_the_store_is_away_a_user_keeps_its_address_here_only_if_it_had_it_within_the_binding_ttl(int daysAgo, bool kept)
    {
        var store = new DownStore(new Isotun.State.Cluster.SqliteKeyValueStore(_dir.File("cluster.db")));
        await using var shared = await Isotun.State.Cluster.SharedState.JoinAsync(store, "/away", "node-a", 32, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var state = new MemoryStateStore(new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow - TimeSpan.FromDays(daysAgo)));
        state.SaveLease("acme", "alice", IPAddress.Parse("10.10.0.7"), null);
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/24", null), state);
        tenant.Cluster = new ClusterAddresses(shared, tenant.Name, tenant.Pool) { BindingTtl = () => TimeSpan.FromDays(30) };
        store.Down = true;

        var (address, refusal) = await tenant.ClusterAddressAsync(new VpnSession(Guid.NewGuid(), tenant, "alice", DateTimeOffset.UtcNow.AddHours(1)), CancellationToken.None);

        if (kept) Assert.Equal(IPAddress.Parse("10.10.0.7"), address);
        else
        {
            Assert.Null(address);
            Assert.Contains("cannot be reached", refusal);
        }
    }

    /// <summary>
    /// What a node falls back on while etcd is away is the user's own address as etcd bound it: not the address of a
    /// further session of the user (released in etcd when it ended, and free for another user since), and a login
    /// made on the fallback does not renew the time the record counts from.
    /// </summary>
    [Fact]
    public async Task While_the_store_is_away_the_fallback_is_the_users_own_address_as_the_cluster_bound_it()
    {
        var store = new DownStore(new Isotun.State.Cluster.SqliteKeyValueStore(_dir.File("cluster.db")));
        await using var shared = await Isotun.State.Cluster.SharedState.JoinAsync(store, "/own", "node-a", 32, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var state = new MemoryStateStore();
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/24", null) with { MaxSessionsPerUser = 4 }, state);
        tenant.Cluster = new ClusterAddresses(shared, tenant.Name, tenant.Pool) { BindingTtl = () => TimeSpan.FromDays(30) };
        var laptop = await ConnectAsync(tenant, "alice");
        var phone = await ConnectAsync(tenant, "alice"); // a binding of its own, alice~2
        Assert.NotEqual(laptop.Address, phone.Address);
        Assert.Equal(laptop.Address, state.GetLease("acme", "alice")!.Address);
        tenant.Release(phone);
        tenant.Release(laptop);
        var recorded = state.GetLease("acme", "alice")!.Updated;

        store.Down = true;
        var back = new VpnSession(Guid.NewGuid(), tenant, "alice", DateTimeOffset.UtcNow.AddHours(1));
        var (address, refusal) = await tenant.ClusterAddressAsync(back, CancellationToken.None);
        Assert.True(address is not null, refusal);
        Assert.Equal(laptop.Address, address);
        Assert.True(tenant.TryLease(back, address));
        Assert.Equal(recorded, state.GetLease("acme", "alice")!.Updated);
    }

    /// <summary>A store whose reads and writes fail as unavailable while <see cref="Down"/>.</summary>
    private sealed class DownStore(Isotun.State.Cluster.IKeyValueStore inner) : Isotun.UnitTests.State.Cluster.DelegatingStore(inner)
    {
        public volatile bool Down;

        private void Check()
        {
            if (Down) throw new Isotun.State.Cluster.KeyValueStoreException(Isotun.State.Cluster.KeyValueStoreError.Unavailable, "the store is down (test)");
        }

        public override Task<Isotun.State.Cluster.KeyValueEntry?> GetAsync(string key, CancellationToken ct = default) { Check(); return base.GetAsync(key, ct); }

        public override Task<Isotun.State.Cluster.RangeResult> RangeAsync(string prefix, CancellationToken ct = default) { Check(); return base.RangeAsync(prefix, ct); }

        public override Task<Isotun.State.Cluster.CommitResult> CommitAsync(IReadOnlyList<Isotun.State.Cluster.KeyCondition> conditions, IReadOnlyList<Isotun.State.Cluster.KeyWrite> writes, CancellationToken ct = default)
        {
            Check();
            return base.CommitAsync(conditions, writes, ct);
        }
    }

    /// <summary>
    /// A further session of a user that moved to another node leaves a copy behind, which ends at its cookie's expiry:
    /// that end does not release the binding the session still uses on the other node. Once no node serves it, it does.
    /// </summary>
    [Fact]
    public async Task The_copy_a_moved_session_left_behind_does_not_release_the_binding_it_uses_elsewhere()
    {
        var (a, nodeA) = await NodeAsync("node-a");
        var (b, nodeB) = await NodeAsync("node-b");
        await using (a)
        await using (b)
        {
            await ConnectAsync(nodeA, "alice");
            var second = await ConnectAsync(nodeA, "alice");
            Assert.Equal("alice~2", second.ClusterBinding);
            string binding = $"{a.Prefix}ipam/users/acme/alice~2";

            // The second session's client comes back through node b, with the same session and address.
            var moved = new VpnSession(second.Id, nodeB, "alice", second.ExpiresAt);
            Assert.True(nodeB.TryLease(moved, second.Address, authoritative: true));
            Publish(b, moved);
            Assert.True(await Eventually.Holds(async () => (await ClusterSessions.ListAsync(a, CancellationToken.None)).Any(s => s.Node == "node-b")),
                "node a never saw node b's session");

            nodeA.Release(second); // the copy on node a ends (its cookie expired there)
            Assert.False(await Eventually.Holds(async () => await a.Store.GetAsync(binding) is null, TimeSpan.FromSeconds(3)),
                "the binding node b's session uses was released");

            b.PublishSessions(new Dictionary<Guid, byte[]>()); // node b's session ends too
            Assert.True(await Eventually.Holds(async () => !(await ClusterSessions.ListAsync(a, CancellationToken.None)).Any()), "node b's session is still listed");
            nodeA.Release(second);
            Assert.True(await Eventually.Holds(async () => await a.Store.GetAsync(binding) is null), "the binding no node serves was not released");
        }
    }

    [Fact]
    public async Task The_node_holding_a_users_block_gives_another_session_of_the_user_its_own_address_while_another_node_serves_the_users()
    {
        var (a, nodeA) = await NodeAsync("node-a");
        var (b, nodeB) = await NodeAsync("node-b");
        await using (a)
        await using (b)
        {
            // Alice's address comes from a block of node a; she leaves, and her laptop comes back through node b.
            var first = await ConnectAsync(nodeA, "alice");
            var own = first.Address!;
            nodeA.Release(first);
            var laptop = await ConnectAsync(nodeB, "alice");
            Assert.Equal(own, laptop.Address);
            Publish(b, laptop);
            Assert.True(await Eventually.Holds(async () => (await ClusterSessions.ListAsync(a, CancellationToken.None)).Any(s => s.Address == own.ToString())),
                "node a never saw node b's session");

            // Her phone logs in through node a, which holds the block: it gets an address of its own, not the laptop's.
            var phone = await ConnectAsync(nodeA, "alice");
            Assert.NotEqual(own, phone.Address);
            Assert.Equal("alice~2", phone.ClusterBinding);
        }
    }
}
