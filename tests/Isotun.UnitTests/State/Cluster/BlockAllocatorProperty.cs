using System.Collections.Concurrent;
using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.State.Cluster;
using Isotun.UnitTests.InProcess;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// The property the block allocator exists for, run against each store (a subclass per store): nodes, each with its
/// own store client and lease, allocate concurrently for many users, some users asking two nodes at once, and no
/// address ever goes to two users; then one node's lease ends (revoked, or expired when its keepalive stops), the
/// others take its blocks over while its users come back and new users arrive, the moved users get their old
/// addresses, and still no address has two users. The interleaving differs each run; the seed is in every message.
/// </summary>
public abstract class BlockAllocatorProperty : IAsyncLifetime
{
    private const string Tenant = "acme";
    private const int BlockSize = 8;
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(5);
    private static readonly IpNetwork Pool = IpNetwork.TryParse("10.20.0.0/24", out var n) ? n : default;

    private readonly string _root = $"/test-{Guid.NewGuid():N}/ipam/";
    private readonly List<IKeyValueStore> _stores = [];
    private readonly List<ILeaseKeepAlive> _keepAlives = [];

    /// <summary>A new client of the one backing store this test uses (skips the test when that store is missing).</summary>
    protected abstract IKeyValueStore Connect();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var k in _keepAlives) await k.DisposeAsync();
        foreach (var s in _stores) await s.DisposeAsync();
    }

    private sealed record Node(string Id, IKeyValueStore Store, long Lease, ILeaseKeepAlive KeepAlive, BlockAllocator Allocator);

    private async Task<Node> StartAsync(string id)
    {
        var store = Connect();
        _stores.Add(store);
        var lease = await store.GrantLeaseAsync(Ttl);
        var keepAlive = store.KeepAlive(lease);
        _keepAlives.Add(keepAlive);
        return new Node(id, store, lease, keepAlive, await BlockAllocator.OpenAsync(store, id, lease, Tenant, Pool, BlockSize, _root));
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Concurrent_allocation_never_hands_out_an_address_twice_also_across_a_takeover(bool expire)
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var why = $"seed {seed}";
        var nodes = new List<Node>();
        for (int i = 0; i < 4; i++) nodes.Add(await StartAsync($"node{i}"));
        var users = Enumerable.Range(0, 120).Select(i => $"user{i}").ToList();

        // Each user asks one node; every fifth also asks another node at the same moment.
        var asks = new List<(Node, string)>();
        foreach (var user in users)
        {
            var first = random.Next(nodes.Count);
            asks.Add((nodes[first], user));
            if (random.Next(5) == 0) asks.Add((nodes[(first + 1 + random.Next(nodes.Count - 1)) % nodes.Count], user));
        }
        var claims = await AllAtOnceAsync(asks.OrderBy(_ => random.Next()).ToList());

        Assert.DoesNotContain(claims, c => c.Claim.Outcome == AddressClaimOutcome.Exhausted);
        var before = OneAddressPerUser(claims, why);
        await AssertStoreAgreesAsync(nodes[1].Store, before, why);

        // End node0's lease: its block keys vanish, its users' bindings stay.
        var victim = nodes[0];
        var victimBlocks = await HeldByAsync(nodes[1].Store, victim.Id);
        var moved = before.Where(p => victimBlocks.Contains(victim.Allocator.Blocks.IndexOf(p.Value))).Select(p => p.Key).ToList();
        Assert.True(moved.Count > 0, $"{why}: node0 held no user's block");
        if (expire)
            await victim.KeepAlive.DisposeAsync();
        else
            await victim.Store.RevokeLeaseAsync(victim.Lease);
        Assert.True(await Eventually.Holds(async () => (await HeldByAsync(nodes[1].Store, victim.Id)).Count == 0), $"{why}: node0's blocks outlived its lease");

        // The survivors take the orphaned blocks over while the moved users come back to any of them and new users arrive.
        var survivors = nodes.Skip(1).ToList();
        var newcomers = Enumerable.Range(0, 40).Select(i => $"late{i}").ToList();
        var takeOvers = survivors.Select(s => Task.Run(() => s.Allocator.TakeOverOrphansAsync())).ToList();
        var after = await AllAtOnceAsync(moved.Concat(newcomers).Select(u => (survivors[random.Next(survivors.Count)], u)).OrderBy(_ => random.Next()).ToList());
        var taken = (await Task.WhenAll(takeOvers)).SelectMany(t => t).ToList();

        Assert.Equal(taken.Count, taken.Distinct().Count()); // no block taken over twice
        foreach (var c in after.Where(c => moved.Contains(c.User)))
        {
            Assert.True(before[c.User].Equals(c.Claim.Address), $"{why}: {c.User} had {before[c.User]} and got {c.Claim.Address} ({c.Claim.Outcome})");
            Assert.Contains(c.Claim.Outcome, new[] { AddressClaimOutcome.Sticky, AddressClaimOutcome.HeldElsewhere });
            Assert.Contains(c.Claim.Owner, survivors.Select(s => s.Id));
        }
        Assert.DoesNotContain(after, c => c.Claim.Outcome == AddressClaimOutcome.Exhausted);
        Assert.Empty(await HeldByAsync(nodes[1].Store, victim.Id));
        var all = OneAddressPerUser(claims.Concat(after).ToList(), why);
        await AssertStoreAgreesAsync(nodes[2].Store, all, why);

        // node0 comes back with a new lease: its old users' addresses are held by the nodes that took them over.
        var back = await StartAsync(victim.Id);
        var returning = await back.Allocator.AllocateAsync(moved[0]);
        Assert.Equal((AddressClaimOutcome.HeldElsewhere, before[moved[0]]), (returning.Outcome, returning.Address));
        Assert.NotEqual(victim.Id, returning.Owner);
    }

    private static async Task<List<(string User, AddressClaim Claim)>> AllAtOnceAsync(List<(Node Node, string User)> asks)
    {
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var results = new ConcurrentBag<(string, AddressClaim)>();
        var tasks = asks.Select(a => Task.Run(async () =>
        {
            await go.Task;
            results.Add((a.User, await a.Node.Allocator.AllocateAsync(a.User)));
        })).ToList();
        go.SetResult();
        await Task.WhenAll(tasks);
        return results.ToList();
    }

    /// <summary>Every claim of a user names one address, no address is named for two users, and each is usable; the user → address map.</summary>
    private static Dictionary<string, IPAddress> OneAddressPerUser(List<(string User, AddressClaim Claim)> claims, string why)
    {
        var blocks = new AddressBlocks(Pool, BlockSize);
        var byUser = new Dictionary<string, IPAddress>();
        foreach (var (user, claim) in claims)
        {
            Assert.True(claim.Address is not null && blocks.IsUsable(claim.Address), $"{why}: {user} got {claim.Address}, not a usable address of {Pool}");
            if (byUser.TryGetValue(user, out var earlier))
                Assert.True(earlier.Equals(claim.Address), $"{why}: {user} got both {earlier} and {claim.Address}");
            byUser[user] = claim.Address!;
        }
        var twice = byUser.GroupBy(p => p.Value).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(p => p.Key))}").ToList();
        Assert.True(twice.Count == 0, $"{why}: addresses handed to two users: {string.Join("; ", twice)}");
        return byUser;
    }

    /// <summary>The store's bindings are exactly the claims, in both directions.</summary>
    private async Task AssertStoreAgreesAsync(IKeyValueStore store, Dictionary<string, IPAddress> expected, string why)
    {
        var users = (await store.RangeAsync($"{_root}users/{Tenant}/")).Entries
            .ToDictionary(e => e.Key[(e.Key.LastIndexOf('/') + 1)..], e => System.Text.Encoding.UTF8.GetString(e.Value.Span));
        var addresses = (await store.RangeAsync($"{_root}addresses/{Tenant}/")).Entries
            .ToDictionary(e => e.Key[(e.Key.LastIndexOf('/') + 1)..], e => System.Text.Encoding.UTF8.GetString(e.Value.Span));
        Assert.True(expected.OrderBy(p => p.Key).Select(p => (p.Key, p.Value.ToString())).SequenceEqual(users.OrderBy(p => p.Key).Select(p => (p.Key, p.Value))),
            $"{why}: the store's user bindings differ from what the nodes answered");
        Assert.True(expected.OrderBy(p => p.Value.ToString()).Select(p => (p.Value.ToString(), p.Key)).SequenceEqual(addresses.OrderBy(p => p.Key).Select(p => (p.Key, p.Value))),
            $"{why}: the store's address bindings differ from what the nodes answered");
    }

    private async Task<HashSet<int>> HeldByAsync(IKeyValueStore store, string node)
    {
        var blocks = new AddressBlocks(Pool, BlockSize);
        var prefix = $"{_root}blocks/{Tenant}/";
        return (await store.RangeAsync(prefix)).Entries
            .Where(e => System.Text.Encoding.UTF8.GetString(e.Value.Span) == node)
            .Select(e => blocks.IndexOf(IPAddress.Parse(e.Key[prefix.Length..])))
            .ToHashSet();
    }
}
