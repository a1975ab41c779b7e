using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.State.Cluster;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The block allocator's rules one at a time, on the SQLite store (the property test covers concurrency and takeover on both stores).</summary>
public sealed class BlockAllocatorTests : IAsyncLifetime, IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly List<IKeyValueStore> _stores = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var s in _stores) await s.DisposeAsync();
    }

    public void Dispose() => _temp.Dispose();

    private static IpNetwork Net(string text) => IpNetwork.TryParse(text, out var n) ? n : throw new ArgumentException(text);

    private IKeyValueStore Store()
    {
        var store = new SqliteKeyValueStore(_temp.File("kv.db"));
        _stores.Add(store);
        return store;
    }

    private async Task<BlockAllocator> NodeAsync(string id, string pool = "10.30.0.0/28", int blockSize = 4)
    {
        var store = Store();
        return await BlockAllocator.OpenAsync(store, id, await store.GrantLeaseAsync(TimeSpan.FromMinutes(5)), "acme", Net(pool), blockSize);
    }

    [Fact]
    public async Task A_node_with_another_pool_or_block_size_is_refused_with_both_definitions_while_a_node_holds_a_block()
    {
        await (await NodeAsync("a", "10.30.0.0/28", 4)).AllocateAsync("alice");
        await NodeAsync("b", "10.30.0.0/28", 4);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => NodeAsync("c", "10.30.0.0/28", 8));
        Assert.Contains("10.30.0.0/28 in blocks of 8", e.Message);
        Assert.Contains("the cluster's is 10.30.0.0/28 4", e.Message);
        Assert.Contains("node(s) a hold blocks of it", e.Message);
        await Assert.ThrowsAsync<InvalidOperationException>(() => NodeAsync("c", "10.30.0.0/27", 4));
    }

    /// <summary>
    /// Once no node holds a block (every node that ran the tenant stopped, their leases gone), a node started with a new
    /// pool records it: a grown pool in blocks of the same size keeps every user's address; a smaller one releases the
    /// bindings it does not hold; a new block size releases them all (their keys name blocks that no longer line up).
    /// </summary>
    [Fact]
    public async Task A_node_that_lost_its_lease_holds_no_block_but_its_sessions_still_keep_the_pool_from_changing()
    {
        var store = Store();
        var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        var alice = await (await BlockAllocator.OpenAsync(store, "a", lease, "acme", Net("10.30.0.0/28"), 4)).AllocateAsync("alice");
        await store.RevokeLeaseAsync(lease); // node a's lease ran out: its blocks went with it, its session did not

        IReadOnlyCollection<string> serving = ["a"];
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => BlockAllocator.OpenAsync(store, "b",
            lease: 1, "acme", Net("10.31.0.0/28"), 4, serving: _ => Task.FromResult(serving)));
        Assert.Contains("node(s) a serve sessions from it", refused.Message);
        var same = await BlockAllocator.OpenAsync(store, "b", await store.GrantLeaseAsync(TimeSpan.FromMinutes(5)), "acme", Net("10.30.0.0/28"), 4,
            serving: _ => throw new InvalidOperationException("not asked when the pool is the same"));
        Assert.Equal(AddressClaimOutcome.Sticky, (await same.AllocateAsync("alice")).Outcome);

        // Once no node serves the tenant (and none holds a block), the change applies.
        await store.RevokeLeaseAsync(same.Lease);
        serving = [];
        var moved = await BlockAllocator.OpenAsync(store, "b", await store.GrantLeaseAsync(TimeSpan.FromMinutes(5)), "acme", Net("10.31.0.0/28"), 4,
            serving: _ => Task.FromResult(serving));
        Assert.Equal(("10.30.0.0/28 4", 1), moved.PoolChange);
        Assert.NotEqual(alice.Address, (await moved.AllocateAsync("alice")).Address);
    }

    [Fact]
    public async Task With_no_block_held_a_new_pool_replaces_the_recorded_one_and_keeps_the_bindings_it_can()
    {
        var store = Store();
        var lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        var first = await BlockAllocator.OpenAsync(store, "a", lease, "acme", Net("10.30.0.0/28"), 4);
        var addresses = new Dictionary<string, IPAddress>();
        for (int i = 0; i < 13; i++) addresses[$"u{i}"] = (await first.AllocateAsync($"u{i}")).Address!;
        await store.RevokeLeaseAsync(lease); // the node stops: its blocks go with its lease

        var grown = await NodeAsync("b", "10.30.0.0/27", 4);
        Assert.Equal(("10.30.0.0/28 4", 0), grown.PoolChange);
        Assert.Equal(new AddressClaim(AddressClaimOutcome.Sticky, addresses["u3"], "b"), await grown.AllocateAsync("u3"));
        Assert.Null((await NodeAsync("c", "10.30.0.0/27", 4)).PoolChange); // the next node finds its own definition

        // A block held outside the smaller pool to come still counts: no change while node z holds it.
        var zLease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        Assert.True((await store.CompareAndPutAsync(BlockAllocator.DefaultRoot + "blocks/acme/10.30.0.24", "z"u8.ToArray(), 0, zLease)).Succeeded);
        await store.RevokeLeaseAsync(grown.Lease);
        Assert.Contains("node(s) z hold blocks", (await Assert.ThrowsAsync<InvalidOperationException>(() => NodeAsync("d", "10.30.0.0/29", 4))).Message);
        await store.RevokeLeaseAsync(zLease);
        var smaller = await NodeAsync("d", "10.30.0.0/29", 4); // hands out 10.30.0.2 to .6
        var outside = addresses.Count(a => !smaller.Blocks.IsUsable(a.Value));
        Assert.Equal(("10.30.0.0/27 4", outside), smaller.PoolChange);
        foreach (var (user, address) in addresses)
        {
            var claim = await smaller.AllocateAsync(user);
            if (smaller.Blocks.IsUsable(address)) Assert.Equal(new AddressClaim(AddressClaimOutcome.Sticky, address, "d"), claim);
            else Assert.True(claim.Outcome is AddressClaimOutcome.New or AddressClaimOutcome.Exhausted, $"{user}: {claim}");
        }

        await store.RevokeLeaseAsync(smaller.Lease);
        var resized = await NodeAsync("e", "10.30.0.0/29", 8);
        Assert.Equal("10.30.0.0/29 4", resized.PoolChange!.Value.Before);
        Assert.Equal(AddressClaimOutcome.New, (await resized.AllocateAsync("fresh")).Outcome);
    }

    [Fact]
    public async Task The_network_gateway_and_broadcast_addresses_are_never_handed_out_and_a_full_pool_says_exhausted()
    {
        var node = await NodeAsync("a");
        var got = new List<IPAddress>();
        for (int i = 0; i < 13; i++)
        {
            var claim = await node.AllocateAsync($"u{i}");
            Assert.Equal(AddressClaimOutcome.New, claim.Outcome);
            got.Add(claim.Address!);
        }

        Assert.Equal(Enumerable.Range(2, 13).Select(i => $"10.30.0.{i}").ToHashSet(), got.Select(a => a.ToString()).ToHashSet());
        Assert.Equal(new AddressClaim(AddressClaimOutcome.Exhausted, null, null), await node.AllocateAsync("one-too-many"));
    }

    [Fact]
    public async Task A_user_asking_again_gets_the_same_address_and_a_released_one_goes_to_the_next_user()
    {
        var node = await NodeAsync("a", "10.30.0.0/29", 4); // 10.30.0.2 to .6
        var first = await node.AllocateAsync("alice");
        Assert.Equal(new AddressClaim(AddressClaimOutcome.Sticky, first.Address, "a"), await node.AllocateAsync("alice"));
        for (int i = 0; i < 4; i++) await node.AllocateAsync($"u{i}");
        Assert.Equal(AddressClaimOutcome.Exhausted, (await node.AllocateAsync("bob")).Outcome);

        Assert.True(await node.ReleaseAsync("alice"));
        Assert.False(await node.ReleaseAsync("alice"));

        Assert.Equal(new AddressClaim(AddressClaimOutcome.New, first.Address, "a"), await node.AllocateAsync("bob"));
    }

    [Fact]
    public async Task A_restarted_node_moves_its_blocks_to_its_new_lease_and_keeps_its_users_addresses()
    {
        var store = Store();
        var oldLease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
        var before = await (await BlockAllocator.OpenAsync(store, "a", oldLease, "acme", Net("10.30.0.0/28"), 4)).AllocateAsync("alice");
        var restarted = await BlockAllocator.OpenAsync(Store(), "a", await store.GrantLeaseAsync(TimeSpan.FromMinutes(5)), "acme", Net("10.30.0.0/28"), 4);

        Assert.Equal(new AddressClaim(AddressClaimOutcome.Sticky, before.Address, "a"), await restarted.AllocateAsync("alice"));
        await store.RevokeLeaseAsync(oldLease); // the old run's lease ends; the block stays, on the new lease

        var other = await NodeAsync("b");
        Assert.Equal(new AddressClaim(AddressClaimOutcome.HeldElsewhere, before.Address, "a"), await other.AllocateAsync("alice"));
        var bob = await restarted.AllocateAsync("bob");
        Assert.Equal((AddressClaimOutcome.New, "a"), (bob.Outcome, bob.Owner));
        Assert.NotEqual(before.Address, bob.Address);
    }

    [Theory]
    [InlineData("10.30.0.0/24", 12)] // not a power of two
    [InlineData("10.30.0.0/24", 2)]
    [InlineData("10.30.0.0/28", 32)] // larger than the pool
    public void A_block_size_that_cannot_cut_the_pool_is_refused(string pool, int blockSize)
    {
        var e = Assert.Throws<ArgumentException>(() => new AddressBlocks(Net(pool), blockSize));
        Assert.Contains($"block size {blockSize}", e.Message);
    }

    [Fact]
    public async Task An_ipv6_pool_hands_out_addresses_from_its_first_blocks()
    {
        var node = await NodeAsync("a", "fd00:30::/64", 16);
        var claims = new List<AddressClaim>();
        for (int i = 0; i < 20; i++) claims.Add(await node.AllocateAsync($"u{i}"));

        Assert.All(claims, c => Assert.Equal(AddressClaimOutcome.New, c.Outcome));
        Assert.Equal(20, claims.Select(c => c.Address).Distinct().Count());
        Assert.All(claims, c => Assert.True(node.Blocks.IsUsable(c.Address!) && !c.Address!.Equals(IPAddress.Parse("fd00:30::1"))));
        Assert.Equal(4096, node.Blocks.Count); // 65536 addresses of the /64 used, in blocks of 16
    }

    [Fact]
    public async Task Bindings_unused_for_their_ttl_and_held_by_no_session_are_released_and_their_addresses_reused()
    {
        var node = await NodeAsync("a", "10.30.0.0/29", 8); // 5 usable addresses: .2 to .6
        var now = new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
        var ttl = TimeSpan.FromDays(30);
        var (old, live, recent, legacy) = (await node.AllocateAsync("old"), await node.AllocateAsync("live"), await node.AllocateAsync("recent"), await node.AllocateAsync("legacy"));
        Assert.True(await node.TouchAsync("old", old.Address!, now - ttl - TimeSpan.FromSeconds(1)));
        Assert.True(await node.TouchAsync("live", live.Address!, now - TimeSpan.FromDays(365)));
        Assert.True(await node.TouchAsync("recent", recent.Address!, now - ttl + TimeSpan.FromMinutes(1)));
        // "legacy" was bound before use was recorded: its clock starts now.

        var released = await node.ExpireAsync(ttl, now, new HashSet<string> { live.Address!.ToString() });

        Assert.Equal(["old"], released);
        Assert.Equal(AddressClaimOutcome.Sticky, (await node.AllocateAsync("live")).Outcome);
        Assert.Equal(recent.Address, (await node.AllocateAsync("recent")).Address);
        Assert.Equal(legacy.Address, (await node.AllocateAsync("legacy")).Address);
        Assert.Empty(await node.ExpireAsync(ttl, now + TimeSpan.FromSeconds(30), new HashSet<string> { live.Address!.ToString() }));
        // A month on, legacy's clock has run out too (and recent's); live's address is still held by a session.
        Assert.Equal(["legacy", "recent"], (await node.ExpireAsync(ttl, now + ttl + TimeSpan.FromSeconds(1), new HashSet<string> { live.Address!.ToString() })).Order());

        // Their addresses are free again: the pool's five usable ones hold live and four newcomers (old among them,
        // with a new binding), which take old's former address too; a sixth finds the pool full.
        var again = await node.AllocateAsync("old");
        Assert.Equal(AddressClaimOutcome.New, again.Outcome);
        var taken = new List<IPAddress?> { again.Address };
        foreach (var user in new[] { "n1", "n2", "n3" }) taken.Add((await node.AllocateAsync(user)).Address);
        Assert.Contains(old.Address, taken);
        Assert.Equal(AddressClaimOutcome.Exhausted, (await node.AllocateAsync("n4")).Outcome);
    }
}
