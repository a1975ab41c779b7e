using System.Net;
using Isotun.State;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.State;

/// <summary>
/// What every <see cref="IStateStore"/> does, run against each implementation (a subclass per store), so the memory
/// twin the server tests use behaves as the SQLite store the server runs on.
/// </summary>
public abstract class StateStoreContract : IDisposable
{
    private static readonly IPAddress V4 = IPAddress.Parse("10.10.0.7");
    private static readonly IPAddress V6 = IPAddress.Parse("fd00:10::7");

    /// <summary>A whole second, as the SQLite store keeps times.</summary>
    protected FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));

    /// <summary>A fresh, empty store on <see cref="Clock"/>.</summary>
    protected abstract IStateStore Create();

    private readonly List<IStateStore> _opened = [];

    private IStateStore Store()
    {
        var store = Create();
        _opened.Add(store);
        return store;
    }

    public virtual void Dispose()
    {
        foreach (var s in _opened) s.Dispose();
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void Whom_a_tenant_trusts_is_recorded_per_tenant_and_replaced()
    {
        var store = Store();
        Assert.Null(store.GetTrust("acme"));
        var since = Clock.GetUtcNow();
        store.SaveTrust("acme", new TrustRecord(["AB01", "CD02"], ["acme", "acme ops/\"x\""], since));
        store.SaveTrust("globex", new TrustRecord([], ["globex"], DateTimeOffset.UnixEpoch));
        var acme = store.GetTrust("acme")!;
        Assert.Equal(["AB01", "CD02"], acme.Cas);
        Assert.Equal(["acme", "acme ops/\"x\""], acme.Ous);
        Assert.Equal(since, acme.Since);
        Assert.Empty(store.GetTrust("globex")!.Cas);

        store.SaveTrust("acme", new TrustRecord(["AB01"], ["acme"], since.AddMinutes(1)));
        Assert.Equal(["AB01"], store.GetTrust("acme")!.Cas);
        Assert.Equal(since.AddMinutes(1), store.GetTrust("acme")!.Since);
    }

    [Fact]
    public void A_session_never_revoked_is_not_revoked()
    {
        Assert.False(Store().IsRevoked(Guid.NewGuid()));
    }

    [Fact]
    public void A_revoked_session_is_revoked_and_no_other()
    {
        var store = Store();
        var (gone, other) = (Guid.NewGuid(), Guid.NewGuid());
        store.Revoke(gone, Clock.GetUtcNow().AddHours(1));
        Assert.True(store.IsRevoked(gone));
        Assert.False(store.IsRevoked(other));
    }

    [Fact]
    public void Revoking_a_session_twice_keeps_it_revoked()
    {
        var store = Store();
        var id = Guid.NewGuid();
        store.Revoke(id, Clock.GetUtcNow().AddHours(1));
        store.Revoke(id, Clock.GetUtcNow().AddHours(2));
        Assert.True(store.IsRevoked(id));
    }

    [Fact]
    public void A_user_without_a_lease_has_none()
    {
        var store = Store();
        store.SaveLease("acme", "bob", V4, V6);
        Assert.Null(store.GetLease("acme", "alice"));
        Assert.Null(store.GetLease("other", "bob"));
    }

    [Fact]
    public void A_saved_lease_comes_back_with_both_addresses_and_the_time_it_was_saved()
    {
        var store = Store();
        store.SaveLease("acme", "alice", V4, V6);
        Assert.Equal(new LeaseRecord("alice", V4, V6, Clock.GetUtcNow()), store.GetLease("acme", "alice"));
    }

    [Theory]
    [InlineData("10.10.0.9", null)]
    [InlineData(null, "fd00:10::9")]
    [InlineData(null, null)]
    public void A_lease_may_lack_either_address(string? v4, string? v6)
    {
        var store = Store();
        IPAddress? a = v4 is null ? null : IPAddress.Parse(v4), b = v6 is null ? null : IPAddress.Parse(v6);
        store.SaveLease("acme", "alice", a, b);
        var lease = store.GetLease("acme", "alice");
        Assert.NotNull(lease);
        Assert.Equal(a, lease.Address);
        Assert.Equal(b, lease.Address6);
    }

    [Fact]
    public void Saving_again_replaces_the_addresses_and_the_time()
    {
        var store = Store();
        store.SaveLease("acme", "alice", V4, V6);
        Clock.Advance(TimeSpan.FromMinutes(5));
        var v4 = IPAddress.Parse("10.10.0.8");
        store.SaveLease("acme", "alice", v4, null);
        Assert.Equal(new LeaseRecord("alice", v4, null, Clock.GetUtcNow()), store.GetLease("acme", "alice"));
        Assert.Single(store.Leases("acme"));
    }

    [Fact]
    public void Tenants_keep_separate_leases_for_the_same_user()
    {
        var store = Store();
        var other = IPAddress.Parse("10.20.0.7");
        store.SaveLease("acme", "alice", V4, null);
        store.SaveLease("globex", "alice", other, null);
        Assert.Equal(V4, store.GetLease("acme", "alice")?.Address);
        Assert.Equal(other, store.GetLease("globex", "alice")?.Address);
        Assert.Equal([V4], store.Leases("acme").Select(l => l.Address));
    }

    [Fact]
    public void User_names_are_kept_exactly_as_given()
    {
        var store = Store();
        string[] users = ["alice", "Alice", "o'brien", "x\"; DROP TABLE leases; --", "zoë", "用户"];
        for (int i = 0; i < users.Length; i++) store.SaveLease("acme", users[i], IPAddress.Parse($"10.10.0.{i + 1}"), null);
        for (int i = 0; i < users.Length; i++) Assert.Equal(IPAddress.Parse($"10.10.0.{i + 1}"), store.GetLease("acme", users[i])?.Address);
        Assert.Equal(users.Order(StringComparer.Ordinal), store.Leases("acme").Select(l => l.User));
    }

    [Fact]
    public void Leases_lists_one_tenant_oldest_first()
    {
        var store = Store();
        store.SaveLease("acme", "carol", IPAddress.Parse("10.10.0.3"), null);
        Clock.Advance(TimeSpan.FromSeconds(10));
        store.SaveLease("globex", "dave", IPAddress.Parse("10.20.0.4"), null);
        store.SaveLease("acme", "alice", IPAddress.Parse("10.10.0.1"), null);
        Clock.Advance(TimeSpan.FromSeconds(10));
        store.SaveLease("acme", "bob", IPAddress.Parse("10.10.0.2"), null);
        Assert.Equal(["carol", "alice", "bob"], store.Leases("acme").Select(l => l.User));
        Assert.Empty(store.Leases("initech"));
    }

    [Fact]
    public async Task Calls_from_many_threads_at_once_all_take_effect()
    {
        var store = Store();
        var ids = Enumerable.Range(0, 40).Select(_ => Guid.NewGuid()).ToArray();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(() =>
        {
            for (int i = worker; i < ids.Length; i += 4)
            {
                store.SaveLease("acme", $"user{i}", IPAddress.Parse($"10.10.0.{i + 1}"), null);
                store.Revoke(ids[i], Clock.GetUtcNow().AddHours(1));
                Assert.NotNull(store.GetLease("acme", $"user{i}"));
                Assert.True(store.IsRevoked(ids[i]));
            }
        })));
        Assert.Equal(ids.Length, store.Leases("acme").Count);
        Assert.All(ids, id => Assert.True(store.IsRevoked(id)));
    }

    [Fact]
    public void Disposing_twice_is_harmless()
    {
        var store = Create();
        store.SaveLease("acme", "alice", V4, null);
        store.Dispose();
        store.Dispose();
    }
}
