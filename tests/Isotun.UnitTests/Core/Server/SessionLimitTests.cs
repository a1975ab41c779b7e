using Isotun.Protocol.Addressing;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// Sessions per user, per tenant and per server: a user who logs in again and again never fills the server, a login
/// over the user's limit replaces that user's oldest idle session (or is refused), and no race slips past a limit.
/// </summary>
public sealed class SessionLimitTests
{
    private readonly MemoryStateStore _state = new();

    private SessionRegistry Registry() => new(_state, TimeProvider.System, TimeSpan.FromHours(1), NullLogger.Instance);

    private static TenantRuntime Tenant(int perUser, UserLimitAction action = UserLimitAction.ReplaceOldestIdle, int max = 100) =>
        TenantWorld.Runtime(TenantWorld.Tenant("t" + Guid.NewGuid().ToString("N")[..6], "10.10.0.0/24", null) with
        {
            MaxSessionsPerUser = perUser,
            OverUserLimit = action,
            MaxSessions = max,
        });

    [Fact]
    public void Defaults_keep_one_user_and_one_tenant_below_the_server()
    {
        var config = new TenantConfig("t", IpNetwork.Parse("10.10.0.0/24"), [], [], 1400, 30, 20, null, "isotun-t");
        Assert.Equal(16, config.MaxSessionsPerUser);
        Assert.Equal(UserLimitAction.ReplaceOldestIdle, config.OverUserLimit);
        Assert.True(config.MaxSessions < ServerConfigLoader.DefaultMaxSessions);
    }

    [Fact]
    public void A_login_over_the_user_limit_replaces_the_oldest_idle_session_and_revokes_its_cookie()
    {
        var registry = Registry();
        var tenant = Tenant(perUser: 2);
        var first = registry.TryCreate(tenant, "alice", 1000, out _)!;
        var second = registry.TryCreate(tenant, "alice", 1000, out _)!;
        var third = registry.TryCreate(tenant, "alice", 1000, out var limit);
        Assert.NotNull(third);
        Assert.Equal(SessionLimit.None, limit);
        Assert.Equal(2, registry.Count);
        Assert.Null(registry.TryGet(first.SessionId));
        Assert.True(_state.IsRevoked(first.SessionId));
        Assert.NotNull(registry.TryGet(second.SessionId));
        // Another user of the tenant is not touched.
        Assert.NotNull(registry.TryCreate(tenant, "bob", 1000, out _));
        Assert.Equal(3, registry.Count);
    }

    [Fact]
    public void With_refuse_a_login_over_the_user_limit_is_refused_and_nothing_is_ended()
    {
        var registry = Registry();
        var tenant = Tenant(perUser: 2, UserLimitAction.Refuse);
        var first = registry.TryCreate(tenant, "alice", 1000, out _)!;
        registry.TryCreate(tenant, "alice", 1000, out _);
        Assert.Null(registry.TryCreate(tenant, "alice", 1000, out var limit));
        Assert.Equal(SessionLimit.User, limit);
        Assert.NotNull(registry.TryGet(first.SessionId));
        Assert.False(_state.IsRevoked(first.SessionId));
    }

    [Fact]
    public void The_tenant_and_the_server_limits_refuse_with_their_name()
    {
        var registry = Registry();
        var small = Tenant(perUser: 10, max: 2);
        registry.TryCreate(small, "a", 1000, out _);
        registry.TryCreate(small, "b", 1000, out _);
        Assert.Null(registry.TryCreate(small, "c", 1000, out var limit));
        Assert.Equal(SessionLimit.Tenant, limit);
        var other = Tenant(perUser: 10);
        Assert.Null(registry.TryCreate(other, "d", 2, out limit));
        Assert.Equal(SessionLimit.Server, limit);
    }

    [Fact]
    public async Task Concurrent_logins_never_pass_a_limit()
    {
        var registry = Registry();
        var tenant = Tenant(perUser: 5, UserLimitAction.Refuse);
        var tickets = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => registry.TryCreate(tenant, "alice", 1000, out SessionLimit _))));
        Assert.Equal(5, tickets.Count(t => t is not null));
        Assert.Equal(5, registry.Count);
    }
}
