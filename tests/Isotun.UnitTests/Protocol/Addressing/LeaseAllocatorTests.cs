using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.UnitTests.Protocol.Addressing;

public class LeaseAllocatorTests
{
    [Fact]
    public void Ipv4_pool_never_leases_network_gateway_or_broadcast_and_exhausts()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        Assert.Equal(IPAddress.Parse("10.10.0.1"), pool.Gateway);
        Assert.Equal(253, pool.Capacity);

        var leased = new HashSet<IPAddress>();
        for (int i = 0; i < pool.Capacity; i++)
        {
            var address = pool.Lease($"t/u{i}");
            Assert.NotNull(address);
            Assert.True(leased.Add(address));
        }

        Assert.Equal(253, pool.ActiveCount);
        Assert.DoesNotContain(IPAddress.Parse("10.10.0.0"), leased);
        Assert.DoesNotContain(IPAddress.Parse("10.10.0.1"), leased);
        Assert.DoesNotContain(IPAddress.Parse("10.10.0.255"), leased);
        Assert.All(leased, a => Assert.True(pool.Network.Contains(a)));
        Assert.Null(pool.Lease("t/late"));

        Assert.True(pool.Release(IPAddress.Parse("10.10.0.77")));
        Assert.Equal(IPAddress.Parse("10.10.0.77"), pool.Lease("t/late"));
        Assert.Null(pool.Lease("t/later"));
    }

    [Fact]
    public void Slash30_has_exactly_one_lease()
    {
        var pool = new LeaseAllocator(Net("192.168.7.4/30"));
        Assert.Equal(1, pool.Capacity);
        Assert.Equal(IPAddress.Parse("192.168.7.5"), pool.Gateway);
        Assert.Equal(IPAddress.Parse("192.168.7.6"), pool.Lease("a"));
        Assert.Null(pool.Lease("b"));
        Assert.Null(pool.Lease("b", IPAddress.Parse("192.168.7.7")));
        Assert.Null(pool.Lease("b", IPAddress.Parse("192.168.7.5")));
    }

    [Theory]
    [InlineData("10.0.0.0/31")]
    [InlineData("10.0.0.1/32")]
    [InlineData("fd00::/127")]
    [InlineData("fd00::/128")]
    public void Prefixes_without_room_are_refused(string network)
    {
        Assert.Throws<ArgumentException>(() => new LeaseAllocator(Net(network)));
    }

    [Fact]
    public void Default_network_is_refused() => Assert.Throws<ArgumentException>(() => new LeaseAllocator(default));

    [Fact]
    public void Leases_are_sticky_after_release()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        var alice = pool.Lease("t/alice")!;
        var bob = pool.Lease("t/bob")!;
        Assert.True(pool.Release(alice));
        Assert.False(pool.Release(alice));
        Assert.False(pool.IsLeased(alice));

        var carol = pool.Lease("t/carol")!;
        Assert.NotEqual(alice, carol);
        Assert.Equal(alice, pool.Lease("t/alice"));
        Assert.Equal("t/alice", pool.OwnerOf(alice));
        Assert.Equal("t/bob", pool.OwnerOf(bob));
        Assert.Equal(3, pool.ActiveCount);
    }

    [Fact]
    public void Sticky_address_taken_by_someone_else_yields_another()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/29")); // 5 leasable: .2 to .6
        var alice = pool.Lease("alice")!;
        pool.Release(alice);
        // Asked for by another while alice is away: not given (see the preferred-address tests)...
        var bob = pool.Lease("bob", alice)!;
        Assert.NotEqual(alice, bob);
        for (int i = 0; i < 3; i++) Assert.NotNull(pool.Lease("other" + i));
        // ...but handed out once no other address is free.
        Assert.Equal(alice, pool.Lease("carol"));
        pool.Release(bob);

        var next = pool.Lease("alice");
        Assert.NotNull(next);
        Assert.NotEqual(alice, next);
        Assert.Equal("carol", pool.OwnerOf(alice));
    }

    [Fact]
    public void Reuse_prefers_the_oldest_released_address()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/29")); // .2 .. .6
        var addresses = Enumerable.Range(0, 5).Select(i => pool.Lease($"u{i}")!).ToArray();
        pool.Release(addresses[3]);
        pool.Release(addresses[1]);
        Assert.Equal(addresses[3], pool.Lease("new1"));
        Assert.Equal(addresses[1], pool.Lease("new2"));
        Assert.Null(pool.Lease("new3"));
    }

    [Fact]
    public void Preferred_is_honoured_when_free()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        var wanted = IPAddress.Parse("10.10.0.50");
        Assert.Equal(wanted, pool.Lease("t/alice", wanted));
        Assert.Equal("t/alice", pool.OwnerOf(wanted));

        // The same owner asking again (reconnect before the old session was reaped) keeps it.
        Assert.Equal(wanted, pool.Lease("t/alice", wanted));
        Assert.Equal(1, pool.ActiveCount);
    }

    [Fact]
    public void Preferred_is_refused_when_it_is_another_owners_sticky_address_while_they_are_away()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        var bobs = pool.Lease("t/bob")!;
        pool.Release(bobs);

        // Carol asks for bob's address while he is offline: she gets another, and bob gets his back.
        var carols = pool.Lease("t/carol", bobs);
        Assert.NotNull(carols);
        Assert.NotEqual(bobs, carols);
        Assert.Equal(bobs, pool.Lease("t/bob", bobs));

        // Kept at start for a stored lease (leased and released, as the server does), the same.
        var fresh = new LeaseAllocator(Net("10.10.0.0/24"));
        var kept = IPAddress.Parse("10.10.0.40");
        fresh.Release(fresh.Lease("t/dave", kept)!);
        Assert.NotEqual(kept, fresh.Lease("t/carol", kept));
        Assert.Equal(kept, fresh.Lease("t/dave", kept));

        // The server's own choice (a cluster bound that address to carol) is given, whoever it was sticky for.
        fresh.Release(kept);
        Assert.Equal(kept, fresh.Lease("t/carol", kept, authoritative: true));
    }

    [Fact]
    public void Preferred_is_refused_when_held_by_someone_else_or_not_leasable()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        var wanted = IPAddress.Parse("10.10.0.50");
        pool.Lease("t/alice", wanted);

        var bob = pool.Lease("t/bob", wanted);
        Assert.NotNull(bob);
        Assert.NotEqual(wanted, bob);
        Assert.Equal("t/alice", pool.OwnerOf(wanted));

        foreach (var bad in new[] { "10.10.0.0", "10.10.0.1", "10.10.0.255", "10.10.1.5", "fd00::5" })
        {
            var got = pool.Lease("t/" + bad, IPAddress.Parse(bad));
            Assert.NotNull(got);
            Assert.NotEqual(IPAddress.Parse(bad), got);
        }
    }

    [Fact]
    public void Ownership_queries()
    {
        var pool = new LeaseAllocator(Net("10.10.0.0/24"));
        Assert.False(pool.IsLeased(IPAddress.Parse("10.10.0.2")));
        Assert.Null(pool.OwnerOf(IPAddress.Parse("10.10.0.1")));
        Assert.False(pool.Release(IPAddress.Parse("10.10.0.1")));
        Assert.False(pool.Release(IPAddress.Parse("192.0.2.1")));
        Assert.False(pool.Release(IPAddress.Parse("fd00::2")));
        var a = pool.Lease("x")!;
        Assert.True(pool.IsLeased(a));
    }

    [Fact]
    public void Ipv6_pool()
    {
        var pool = new LeaseAllocator(Net("fd00:10::/64"));
        Assert.Equal(IPAddress.Parse("fd00:10::1"), pool.Gateway);
        Assert.Equal(LeaseAllocator.MaxCapacity, pool.Capacity);
        Assert.Equal(IPAddress.Parse("fd00:10::2"), pool.Lease("a"));
        Assert.Equal(IPAddress.Parse("fd00:10::3"), pool.Lease("b"));
        Assert.Equal(IPAddress.Parse("fd00:10::abcd"), pool.Lease("c", IPAddress.Parse("fd00:10::abcd")));
        Assert.NotEqual(IPAddress.Parse("fd00:10::1"), pool.Lease("d", IPAddress.Parse("fd00:10::1")));
        Assert.NotEqual(IPAddress.Parse("fd00:10::"), pool.Lease("e", IPAddress.Parse("fd00:10::")));
        Assert.True(pool.Release(IPAddress.Parse("fd00:10::2")));
        Assert.Equal(IPAddress.Parse("fd00:10::2"), pool.Lease("a"));
    }

    [Fact]
    public void Small_ipv6_pool_exhausts()
    {
        var pool = new LeaseAllocator(Net("fd00::/126"));
        Assert.Equal(2, pool.Capacity);
        Assert.Equal(IPAddress.Parse("fd00::2"), pool.Lease("a"));
        Assert.Equal(IPAddress.Parse("fd00::3"), pool.Lease("b"));
        Assert.Null(pool.Lease("c"));
    }

    [Fact]
    public void Large_ipv4_pool_is_capped()
    {
        var pool = new LeaseAllocator(Net("10.0.0.0/8"));
        Assert.Equal(LeaseAllocator.MaxCapacity, pool.Capacity);
        Assert.Equal(65533, new LeaseAllocator(Net("10.1.0.0/16")).Capacity);
    }

    [Fact]
    public void Churn_keeps_leases_unique()
    {
        var pool = new LeaseAllocator(Net("10.20.0.0/26")); // 61 leasable
        var random = new Random(3);
        var held = new Dictionary<IPAddress, string>();
        for (int step = 0; step < 20000; step++)
        {
            string owner = $"u{random.Next(100)}";
            if (held.Count > 0 && random.Next(3) == 0)
            {
                var victim = held.Keys.ElementAt(random.Next(held.Count));
                Assert.True(pool.Release(victim));
                held.Remove(victim);
                continue;
            }

            IPAddress? preferred = random.Next(4) == 0 ? IPAddress.Parse($"10.20.0.{random.Next(64)}") : null;
            var got = pool.Lease(owner, preferred);
            if (got is null)
            {
                Assert.Equal(pool.Capacity, held.Count);
                continue;
            }

            if (held.TryGetValue(got, out var holder))
            {
                Assert.Equal(owner, holder); // only a re-lease by the same owner may return a held address
            }

            held[got] = owner;
            Assert.NotEqual(pool.Gateway, got);
            Assert.Equal(held.Count, pool.ActiveCount);
        }
    }

    [Fact]
    public void Concurrent_leases_are_unique()
    {
        var pool = new LeaseAllocator(Net("10.30.0.0/20"));
        var results = new System.Collections.Concurrent.ConcurrentBag<IPAddress>();
        Parallel.For(0, 4000, i =>
        {
            var address = pool.Lease($"u{i}");
            if (address is not null)
            {
                results.Add(address);
            }
        });

        Assert.Equal(4000, results.Count);
        Assert.Equal(4000, results.Distinct().Count());
        Assert.Equal(4000, pool.ActiveCount);
    }

    private static IpNetwork Net(string text)
    {
        Assert.True(IpNetwork.TryParse(text, out var network), text);
        return network;
    }
}
