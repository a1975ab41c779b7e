using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Isotun.Metrics;
using Isotun.Protocol.Cstp;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.Transport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// The registry owns a session's life: it gives the addresses, attaches connections (routes and the active gauges)
/// and takes them off again when the attachment is disposed, also when the tunnel ends by an exception.
/// </summary>
public sealed class SessionLifecycleTests : IDisposable
{
    // A tenant of its own, so that the process-wide gauges can be read for it alone.
    private readonly string _name = "life" + Guid.NewGuid().ToString("N")[..8];
    private readonly TenantRuntime _tenant;
    private readonly SessionRegistry _registry;
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _gauges = new();

    public SessionLifecycleTests()
    {
        _tenant = TenantWorld.Runtime(TenantWorld.Tenant(_name, "10.10.0.0/29", null) with { MaxSessionsPerUser = 4 });
        _registry = new SessionRegistry(new MemoryStateStore(), TimeProvider.System, TimeSpan.FromHours(1), NullLogger.Instance);
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == IsotunMetrics.MeterName && instrument.Name is "isotun.sessions.active" or "isotun.queues.active")
                l.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "tenant" && tag.Value as string == _name) _gauges.AddOrUpdate(instrument.Name, value, (_, old) => old + value);
        });
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    private long Active => _gauges.GetValueOrDefault("isotun.sessions.active");
    private long Queues => _gauges.GetValueOrDefault("isotun.queues.active");

    private async Task<VpnSession> AddressedSessionAsync(string user = "alice")
    {
        var ticket = _registry.TryCreate(_tenant, user, 100, out var refused);
        Assert.Equal(SessionLimit.None, refused);
        var session = _registry.GetOrRestore(ticket!, _tenant, int.MaxValue, out _)!;
        Assert.Null(await _registry.AddressAsync(session, null, CancellationToken.None));
        return session;
    }

    private static Downlink Connection(VpnSession s, int queue = 0)
    {
        var stream = new MemoryStream();
        return new TunnelConnection(queue + 1, s, stream, new ConnectionReader(stream), 1400, IsotunExtension.Queues, NullLogger.Instance, CancellationToken.None, queue).Link;
    }

    /// <summary>
    /// A session rebuilt from its cookie after a restart logged in when the cookie was issued, not when it came back:
    /// of a user's two sessions, the newer stays the newer whichever reconnects first.
    /// </summary>
    [Fact]
    public void A_session_restored_from_its_cookie_keeps_the_time_it_logged_in()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T10:00:00Z"));
        var before = new SessionRegistry(new MemoryStateStore(), time, TimeSpan.FromHours(8), NullLogger.Instance);
        var older = before.TryCreate(_tenant, "gw-a", 100, out _)!;
        time.Advance(TimeSpan.FromMinutes(5));
        var newer = before.TryCreate(_tenant, "gw-a", 100, out _)!;
        time.Advance(TimeSpan.FromMinutes(30)); // the server restarts; the newer session comes back first

        var after = new SessionRegistry(new MemoryStateStore(), time, TimeSpan.FromHours(8), NullLogger.Instance);
        var newerBack = after.GetOrRestore(newer, _tenant, int.MaxValue, out _)!;
        var olderBack = after.GetOrRestore(older, _tenant, int.MaxValue, out _)!;
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T10:05:00Z"), newerBack.Since);
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T10:00:00Z"), olderBack.Since);
        Assert.True(newerBack.Since > olderBack.Since);
    }

    /// <summary>
    /// Sessions rebuilt from cookies after a restart count against the limits as logins do: a user who logged in again
    /// meanwhile cannot bring the old cookies back on top (refused, or the oldest idle one replaced, as the tenant
    /// says), and the server's limit holds too.
    /// </summary>
    [Theory]
    [InlineData(UserLimitAction.Refuse)]
    [InlineData(UserLimitAction.ReplaceOldestIdle)]
    public void Sessions_restored_from_cookies_count_against_the_limits(UserLimitAction over)
    {
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant(_name, "10.10.0.0/29", null) with { MaxSessionsPerUser = 2, OverUserLimit = over });
        var before = new SessionRegistry(new MemoryStateStore(), TimeProvider.System, TimeSpan.FromHours(1), NullLogger.Instance);
        var cookies = Enumerable.Range(0, 2).Select(i => before.TryCreate(tenant, "alice", 100, out _)!).ToList();
        var after = new SessionRegistry(new MemoryStateStore(), TimeProvider.System, TimeSpan.FromHours(1), NullLogger.Instance);
        Assert.NotNull(after.TryCreate(tenant, "alice", 100, out _)); // logged in again after the restart
        Assert.NotNull(after.GetOrRestore(cookies[0], tenant, 100, out _));

        var third = after.GetOrRestore(cookies[1], tenant, 100, out var refused);
        if (over == UserLimitAction.Refuse)
        {
            Assert.Null(third);
            Assert.Equal(SessionLimit.User, refused);
            // A live session is found as it is, whatever the limits.
            Assert.Same(after.TryGet(cookies[0].SessionId), after.GetOrRestore(cookies[0], tenant, 100, out _));
        }
        else
        {
            Assert.NotNull(third);
            Assert.Null(after.TryGet(cookies[0].SessionId)); // the oldest session without a connection made room
        }
        Assert.Equal(2, after.All.Count(s => s.User == "alice"));

        // The server's limit: full, a cookie of another user is not rebuilt.
        var bob = before.TryCreate(tenant, "bob", 100, out _)!;
        Assert.Null(after.GetOrRestore(bob, tenant, after.Count, out refused));
        Assert.Equal(SessionLimit.Server, refused);
    }

    /// <summary>
    /// A kick while the state file cannot be written (another process holds it locked past the busy timeout) ends the
    /// session all the same, and its cookie stays refused: the revocation holds in the store until it can be written.
    /// </summary>
    [Fact]
    public async Task A_kick_ends_the_session_and_refuses_its_cookie_when_the_state_file_cannot_take_the_revocation()
    {
        using var dir = new Isotun.UnitTests.Security.TempDirectory();
        using var state = new SqliteStateStore(dir.File("state.db"));
        var registry = new SessionRegistry(state, TimeProvider.System, TimeSpan.FromHours(1), NullLogger.Instance);
        var ticket = registry.TryCreate(_tenant, "alice", 100, out _)!;
        var session = registry.GetOrRestore(ticket, _tenant, int.MaxValue, out _)!;
        Assert.Null(await registry.AddressAsync(session, null, CancellationToken.None));
        using var other = Isotun.UnitTests.State.SqliteStateStoreTests.Connect(dir.File("state.db"));
        Isotun.UnitTests.State.SqliteStateStoreTests.Exec(other, "BEGIN EXCLUSIVE");

        await Task.Run(() => registry.Kick(session, "kicked while the state file is locked"));
        Assert.Equal(0, registry.Count);
        Assert.True(session.Ended);
        Assert.Equal(0, _tenant.LeasedAddresses);
        Assert.True(state.IsRevoked(ticket.SessionId));
        Isotun.UnitTests.State.SqliteStateStoreTests.Exec(other, "COMMIT");
    }

    /// <summary>
    /// Kicking many sessions whose peers read nothing (their DISCONNECT never goes out) ends them all with one shared
    /// second of grace, not a second each: a reload that removes a tenant of many such sessions answers in time.
    /// </summary>
    [Fact]
    public async Task Sessions_kicked_together_share_one_second_for_their_disconnects()
    {
        var links = new List<Downlink>();
        var attachments = new List<SessionAttachment>();
        for (int i = 0; i < 4; i++)
        {
            var session = await AddressedSessionAsync("user" + i);
            var link = Connection(session); // its writer never runs: nothing it queues goes out
            attachments.Add(_registry.AttachPrimary(session, link, 1));
            links.Add(link);
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(4, _registry.KickWhere(s => s.User.StartsWith("user", StringComparison.Ordinal) ? "tenant removed" : null));
        var took = clock.Elapsed;
        Assert.All(links, l => Assert.Equal(TunnelEnd.Revoked, l.EndReason));
        Assert.Equal(0, _registry.Count);
        // One shared second: four seconds one after another before.
        Assert.True(took < TimeSpan.FromSeconds(3), $"kicking four stuck sessions took {took.TotalSeconds:0.0} s");
        foreach (var a in attachments) a.Dispose();
    }

    /// <summary>
    /// A connection attached but never run (its CONNECT refused after the attachment, or its reply not taken) gives
    /// back the bytes of the frames queued for it meanwhile: they would count against the session's budget for good,
    /// and a client that repeats it would have every later packet dropped as over budget.
    /// </summary>
    [Fact]
    public async Task A_connection_that_never_ran_gives_back_what_was_queued_for_it()
    {
        var session = await AddressedSessionAsync();
        var stream = new MemoryStream();
        var tunnel = new TunnelConnection(7, session, stream, new ConnectionReader(stream), 1400, IsotunExtension.None, NullLogger.Instance, CancellationToken.None);
        using (_registry.AttachPrimary(session, tunnel.Link, 1))
            for (int i = 0; i < 3; i++) Assert.Equal(EnqueueResult.Queued, tunnel.Link.Writer.Offer(PacketBuffer.Rent()));
        Assert.True(session.Budget.Held > 0);
        tunnel.Discard();
        Assert.Equal(0, session.Budget.Held);
        Assert.Equal(TunnelEnd.Error, tunnel.Link.EndReason);
    }

    [Fact]
    public async Task A_tunnel_that_ends_by_an_exception_leaves_no_route_and_no_count_behind()
    {
        var session = await AddressedSessionAsync();
        var primary = Connection(session);
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            using var attached = _registry.AttachPrimary(session, primary, 2);
            attached.Up();
            using (var queue = _registry.TryAttachQueue(session, 1, Connection(session, 1)))
            {
                Assert.NotNull(queue);
                queue.Up();
                Assert.Equal((1L, 1L), (Active, Queues));
            }
            Assert.Equal((1L, 0L), (Active, Queues));
            Assert.Same(session, _tenant.RouteTo(session.AddressKey));
            await Task.Yield();
            throw new InvalidOperationException("the tunnel broke");
        });
        Assert.Equal("the tunnel broke", failure.Message);
        Assert.Null(_tenant.RouteTo(session.AddressKey));
        Assert.Null(session.Connection);
        Assert.Equal((0L, 0L), (Active, Queues));
        // The session itself waits for its client to come back with the cookie, as after any lost connection.
        Assert.Same(session, _registry.TryGet(session.Id));
    }

    [Fact]
    public async Task A_connection_whose_reply_never_went_out_is_detached_but_was_never_counted()
    {
        var session = await AddressedSessionAsync();
        using (_registry.AttachPrimary(session, Connection(session), 1))
            Assert.Same(session, _tenant.RouteTo(session.AddressKey));
        Assert.Null(_tenant.RouteTo(session.AddressKey));
        Assert.Equal(0L, Active);
    }

    [Fact]
    public async Task Disposing_twice_counts_down_once_and_a_replaced_primary_leaves_the_new_one_routed()
    {
        var session = await AddressedSessionAsync();
        var first = _registry.AttachPrimary(session, Connection(session), 1);
        first.Up();
        var second = _registry.AttachPrimary(session, Connection(session), 1);
        second.Up();
        Assert.Equal(2L, Active); // both connections are up until the replaced one has wound down
        first.Dispose();
        first.Dispose();
        Assert.Equal(1L, Active);
        Assert.Same(session, _tenant.RouteTo(session.AddressKey));
        second.Dispose();
        Assert.Equal(0L, Active);
        Assert.Null(_tenant.RouteTo(session.AddressKey));
    }

    [Fact]
    public async Task A_queue_cannot_join_a_session_without_a_primary()
    {
        var session = await AddressedSessionAsync();
        Assert.Null(_registry.TryAttachQueue(session, 1, Connection(session, 1)));
        Assert.Equal(0L, Queues);
    }

    [Fact]
    public async Task Addresses_run_out_with_the_pool_and_come_back_when_a_session_ends()
    {
        // A /29 holds six: the gateway takes one, five are left.
        var sessions = new List<VpnSession>();
        for (int i = 0; i < 5; i++) sessions.Add(await AddressedSessionAsync("user" + i));
        var ticket = _registry.TryCreate(_tenant, "late", 100, out _);
        var late = _registry.GetOrRestore(ticket!, _tenant, int.MaxValue, out _)!;
        var refused = await _registry.AddressAsync(late, null, CancellationToken.None);
        Assert.NotNull(refused);
        Assert.Equal("no address left in the pool", refused.Value.Client);
        Assert.Contains(_name, refused.Value.Log);

        _registry.End(sessions[0], "test");
        Assert.Null(await _registry.AddressAsync(late, null, CancellationToken.None));
        Assert.Equal(sessions[0].Address, late.Address);
    }
}
