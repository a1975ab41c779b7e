using System.Diagnostics;
using System.Net;
using Isotun.Metrics;
using Isotun.Protocol.Auth;
using Isotun.Security;
using Isotun.Server;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Server;

/// <summary>Failed-login bans per source and per user, the bounded login gate, and equal cost for unknown users and wrong passwords.</summary>
public sealed class LoginThrottleTests
{
    private static readonly IPAddress A = IPAddress.Parse("198.18.5.1"), B = IPAddress.Parse("198.18.5.2");

    [Fact]
    public void A_user_is_banned_after_its_failures_and_freed_when_the_ban_ends()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(time);
        throttle.Configure(userBanAfter: 3, sourceBanAfter: 100, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        var alice = LoginThrottle.UserKey("acme", "alice");
        Assert.Equal((false, false), throttle.Failed(A, alice));
        Assert.Equal((false, false), throttle.Failed(B, alice));
        Assert.Equal((false, true), throttle.Failed(A, alice));
        // From any source, and only that user.
        Assert.Equal(LoginBlock.User, throttle.Check(B, alice));
        Assert.Equal(LoginBlock.None, throttle.Check(B, LoginThrottle.UserKey("acme", "bob")));
        Assert.Equal(1, throttle.BannedUsers);
        time.Advance(TimeSpan.FromMinutes(2) + TimeSpan.FromSeconds(1));
        Assert.Equal(LoginBlock.None, throttle.Check(A, alice));
    }

    /// <summary>Attempts under way count against the ban until they end: their failures and they together stay
    /// within the count, so guesses sent at once cannot all pass before the first one fails.</summary>
    [Fact]
    public void Attempts_under_way_hold_their_place_until_they_end()
    {
        var throttle = new LoginThrottle(new FakeTimeProvider());
        throttle.Configure(userBanAfter: 3, sourceBanAfter: 100, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        var alice = LoginThrottle.UserKey("acme", "alice");
        using var first = throttle.Begin(A, alice);
        using var second = throttle.Begin(B, alice);
        using var third = throttle.Begin(A, alice);
        Assert.All([first, second, third], a => Assert.Equal(LoginBlock.None, a.Block));
        using (var fourth = throttle.Begin(B, alice)) Assert.Equal(LoginBlock.User, fourth.Block);
        Assert.Equal(LoginBlock.None, throttle.Begin(B, LoginThrottle.UserKey("acme", "bob")).Block); // only that user

        throttle.Failed(A, alice);
        first.Dispose();
        first.Dispose(); // once only
        using (var again = throttle.Begin(B, alice)) Assert.Equal(LoginBlock.User, again.Block); // 1 failure + 2 under way
        second.Dispose(); // ended without a failure (a form shown)
        using (var now = throttle.Begin(B, alice)) Assert.Equal(LoginBlock.None, now.Block);

        // The source's count works the same way.
        throttle.Configure(userBanAfter: 100, sourceBanAfter: 2, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        using var fromB = throttle.Begin(B, null);
        using var fromB2 = throttle.Begin(B, null);
        using (var fromB3 = throttle.Begin(B, null)) Assert.Equal(LoginBlock.Source, fromB3.Block);
    }

    /// <summary>A success clears the user's failures, but not a ban another node started meanwhile.</summary>
    [Fact]
    public void A_success_does_not_lift_a_ban_in_force()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(time);
        var alice = LoginThrottle.UserKey("acme", "alice");
        throttle.Failed(A, alice);
        throttle.Succeeded(alice);
        Assert.Equal(LoginBlock.None, throttle.Check(A, alice));
        Assert.True(throttle.Apply(LoginThrottle.UserScope, alice, time.GetUtcNow().AddMinutes(2)));
        throttle.Succeeded(alice);
        Assert.Equal(LoginBlock.User, throttle.Check(A, alice));
    }

    /// <summary>An unban that names a user and no tenant lifts that user's bans in every tenant, and no one else's.</summary>
    [Fact]
    public void A_user_unbanned_without_a_tenant_is_unbanned_in_every_tenant_and_no_other_user_is()
    {
        var throttle = new LoginThrottle(new FakeTimeProvider());
        throttle.Configure(userBanAfter: 1, sourceBanAfter: 100, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        string[] keys = ["acme/alice", "globex/alice", "acme/malice", "acme/alice2"];
        foreach (var key in keys) throttle.Failed(A, key);
        Assert.Equal(4, throttle.BannedUsers);
        Assert.True(throttle.UnbanUserInEveryTenant("alice"));
        Assert.Equal(LoginBlock.None, throttle.Check(B, "acme/alice"));
        Assert.Equal(LoginBlock.None, throttle.Check(B, "globex/alice"));
        Assert.Equal(LoginBlock.User, throttle.Check(B, "acme/malice"));
        Assert.Equal(LoginBlock.User, throttle.Check(B, "acme/alice2"));
        Assert.False(throttle.UnbanUserInEveryTenant("alice"));
    }

    [Fact]
    public void Failures_other_nodes_counted_add_to_this_nodes_and_this_nodes_are_shared_until_a_ban_or_the_window_clears_them()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        var throttle = new LoginThrottle(time);
        throttle.Configure(userBanAfter: 10, sourceBanAfter: 100, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        var alice = LoginThrottle.UserKey("acme", "alice");
        var shared = new List<(string Scope, string Key, int Count, DateTimeOffset Until)>();
        throttle.FailuresCounted = (scope, key, count, until) => shared.Add((scope, key, count, until));
        int elsewhere = 7;
        throttle.FailuresElsewhere = (scope, key) => scope == LoginThrottle.UserScope && key == alice ? elsewhere : 0;

        // 7 elsewhere and 3 here make the 10 that ban.
        Assert.Equal((false, false), throttle.Failed(A, alice));
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal((false, false), throttle.Failed(A, alice));
        Assert.Equal((false, true), throttle.Failed(A, alice));
        var end = new DateTimeOffset(2026, 12, 5, 12, 5, 0, TimeSpan.Zero); // the window runs from the first failure
        Assert.Equal(
            [
                (LoginThrottle.SourceScope, A.ToString(), 1, end), (LoginThrottle.UserScope, alice, 1, end),
                (LoginThrottle.SourceScope, A.ToString(), 2, end), (LoginThrottle.UserScope, alice, 2, end),
                (LoginThrottle.SourceScope, A.ToString(), 3, end), (LoginThrottle.UserScope, alice, 0, end), // the ban clears it
            ],
            shared);

        // A source whose failures age out of the window is withdrawn at the next sweep.
        shared.Clear();
        time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(LoginBlock.None, throttle.Check(A, null));
        Assert.Contains((LoginThrottle.SourceScope, A.ToString(), 0, default(DateTimeOffset)), shared);

        // A ban from another node clears what this node counted of it; a success clears the user's count.
        var bob = LoginThrottle.UserKey("acme", "bob");
        elsewhere = 0;
        throttle.Failed(B, bob);
        shared.Clear();
        Assert.True(throttle.Apply(LoginThrottle.UserScope, bob, time.GetUtcNow() + TimeSpan.FromMinutes(2)));
        Assert.Equal([(LoginThrottle.UserScope, bob, 0, default(DateTimeOffset))], shared);
        var carol = LoginThrottle.UserKey("acme", "carol");
        throttle.Failed(B, carol);
        shared.Clear();
        throttle.Succeeded(carol);
        Assert.Equal([(LoginThrottle.UserScope, carol, 0, default(DateTimeOffset))], shared);
    }

    [Fact]
    public void Bans_made_here_are_reported_for_the_cluster_and_bans_from_elsewhere_apply_without_echo()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        var throttle = new LoginThrottle(time);
        throttle.Configure(userBanAfter: 2, sourceBanAfter: 2, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2));
        var started = new List<(string Scope, string Key, DateTimeOffset Until)>();
        var lifted = new List<(string Scope, string Key)>();
        throttle.BanStarted = (scope, key, until) => started.Add((scope, key, until));
        throttle.BanLifted = (scope, key) => lifted.Add((scope, key));
        var alice = LoginThrottle.UserKey("acme", "alice");
        var v6 = IPAddress.Parse("2001:db8:1:2::77");

        throttle.Failed(v6, alice);
        throttle.Failed(v6, alice);
        var until = time.GetUtcNow() + TimeSpan.FromMinutes(2);
        // The source is shared as its /64, the user as its group/name key.
        Assert.Equal([("source", "2001:db8:1:2::", until), ("user", "acme/alice", until)], started);

        // From another node: applied here until its end, and not reported again.
        var bob = LoginThrottle.UserKey("acme", "bob");
        Assert.True(throttle.Apply("user", bob, time.GetUtcNow() + TimeSpan.FromMinutes(1)));
        Assert.True(throttle.Apply("source", "198.18.9.9", time.GetUtcNow() + TimeSpan.FromMinutes(1)));
        Assert.False(throttle.Apply("galaxy", "x", time.GetUtcNow() + TimeSpan.FromMinutes(1)));
        Assert.Equal(2, started.Count);
        Assert.Equal(LoginBlock.User, throttle.Check(A, bob));
        Assert.Equal(LoginBlock.Source, throttle.Check(IPAddress.Parse("198.18.9.9"), null));
        throttle.Lift("source", "198.18.9.9");
        Assert.Equal(LoginBlock.None, throttle.Check(IPAddress.Parse("198.18.9.9"), null));
        Assert.Empty(lifted);
        time.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.Equal(LoginBlock.None, throttle.Check(A, bob));
        // A ban that has already ended changes nothing.
        Assert.True(throttle.Apply("user", bob, time.GetUtcNow() - TimeSpan.FromSeconds(1)));
        Assert.Equal(LoginBlock.None, throttle.Check(A, bob));

        // The operator's unban is reported, so that it reaches the other nodes.
        Assert.True(throttle.UnbanUser(alice));
        Assert.Equal([("user", "acme/alice")], lifted);
    }

    [Fact]
    public void A_source_is_banned_after_its_failures_whatever_the_user_and_an_IPv6_slash_64_counts_as_one()
    {
        var throttle = new LoginThrottle(new FakeTimeProvider());
        throttle.Configure(userBanAfter: 100, sourceBanAfter: 3, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
        throttle.Failed(IPAddress.Parse("2001:db8::1"), "x/u1");
        throttle.Failed(IPAddress.Parse("2001:db8::2"), "x/u2");
        Assert.Equal((true, false), throttle.Failed(IPAddress.Parse("2001:db8::3"), "x/u3"));
        Assert.Equal(LoginBlock.Source, throttle.Check(IPAddress.Parse("2001:db8::99"), "x/anyone"));
        Assert.Equal(LoginBlock.None, throttle.Check(IPAddress.Parse("2001:db8:0:1::1"), "x/anyone"));
        Assert.True(throttle.UnbanSource(IPAddress.Parse("2001:db8::5")));
        Assert.Equal(LoginBlock.None, throttle.Check(IPAddress.Parse("2001:db8::99"), "x/anyone"));

        // Failures without a ban are forgotten too, but no ban was lifted (`isotun unban` says "no such ban").
        throttle.Failed(IPAddress.Parse("2001:db8::1"), "x/u1");
        Assert.False(throttle.UnbanSource(IPAddress.Parse("2001:db8::1")));
        Assert.False(throttle.UnbanUser("x/u1"));
        Assert.False(throttle.UnbanSource(IPAddress.Parse("2001:db8::1")));
    }

    [Fact]
    public void Failures_outside_the_window_start_over_and_a_success_clears_the_user()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(time);
        throttle.Configure(userBanAfter: 3, sourceBanAfter: 100, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5));
        throttle.Failed(A, "t/u");
        throttle.Failed(A, "t/u");
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal((false, false), throttle.Failed(A, "t/u")); // the first two are out of the window
        throttle.Failed(A, "t/u");
        throttle.Succeeded("t/u");
        Assert.Equal((false, false), throttle.Failed(A, "t/u"));
        // Bans can be turned off.
        throttle.Configure(0, 0, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5));
        for (int i = 0; i < 50; i++) Assert.Equal((false, false), throttle.Failed(A, "t/u"));
    }

    [Fact]
    public async Task The_login_gate_admits_its_concurrency_queues_a_few_and_refuses_the_rest_at_once()
    {
        var gate = new LoginGate(concurrency: 2, queue: 1);
        Assert.Equal(GateEntry.Entered, await gate.EnterAsync(null, CancellationToken.None));
        Assert.Equal(GateEntry.Entered, await gate.EnterAsync(null, CancellationToken.None));
        var queued = gate.EnterAsync(null, CancellationToken.None).AsTask();
        Assert.False(queued.IsCompleted);
        Assert.Equal(GateEntry.Busy, await gate.EnterAsync(null, CancellationToken.None)); // the queue is full: busy
        gate.Exit(null);
        Assert.Equal(GateEntry.Entered, await queued.WaitAsync(TimeSpan.FromSeconds(10)));
        gate.Exit(null);
        gate.Exit(null);
    }

    /// <summary>
    /// One source cannot take the whole queue (one peer with many connections, each posting a made-up user, would keep
    /// every other password login out): past its share it is refused at once, while another source still queues; its
    /// share comes back as its logins end, or are refused, or give up waiting. An IPv6 /64 is one source.
    /// </summary>
    [Fact]
    public async Task One_source_has_a_bounded_share_of_the_login_gate()
    {
        var gate = new LoginGate(concurrency: 1, queue: 10, perSource: 3);
        var a = IPAddress.Parse("2001:db8:1:2::1");
        var sameSlash64 = IPAddress.Parse("2001:db8:1:2::99");
        Assert.Equal(GateEntry.Entered, await gate.EnterAsync(a, CancellationToken.None));
        var second = gate.EnterAsync(sameSlash64, CancellationToken.None).AsTask();
        using var giveUp = new CancellationTokenSource();
        var third = gate.EnterAsync(a, giveUp.Token).AsTask();
        Assert.Equal(GateEntry.SourceBusy, await gate.EnterAsync(a, CancellationToken.None));
        Assert.Equal(GateEntry.SourceBusy, await gate.EnterAsync(sameSlash64, CancellationToken.None));
        var other = gate.EnterAsync(B, CancellationToken.None).AsTask();
        Assert.False(other.IsCompleted); // queued, not refused

        // A waiter that gives up hands its share back.
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
        var fourth = gate.EnterAsync(a, CancellationToken.None).AsTask();
        Assert.False(fourth.IsCompleted);

        gate.Exit(a);
        Assert.Equal(GateEntry.Entered, await second.WaitAsync(TimeSpan.FromSeconds(10)));
        gate.Exit(sameSlash64);
        Assert.Equal(GateEntry.Entered, await other.WaitAsync(TimeSpan.FromSeconds(10)));
        gate.Exit(B);
        Assert.Equal(GateEntry.Entered, await fourth.WaitAsync(TimeSpan.FromSeconds(10)));
        gate.Exit(a);
        // Everything handed back: the source has its whole share again.
        for (int i = 0; i < 3; i++) _ = gate.EnterAsync(a, CancellationToken.None).AsTask();
        Assert.Equal(GateEntry.SourceBusy, await gate.EnterAsync(a, CancellationToken.None));
    }

    [Fact]
    public void An_unknown_user_and_a_wrong_password_cost_the_same_time()
    {
        using var temp = new TempDirectory();
        var file = temp.File("users.passwd");
        PasswordFile.SetUser(file, "alice", PasswordHasher.Hash("the-right-one")); // default iterations, as `isotun user add`
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("timing", "10.10.0.0/24", file));
        var auth = new Authenticator(new Dictionary<string, TenantRuntime> { ["timing"] = tenant }, null);
        var peer = new PeerInfo(null, null, null);
        ClientAuthMessage Reply(string user) =>
            new("auth-reply", "v9.01", null, null, new Dictionary<string, string> { ["username"] = user, ["password"] = "a-wrong-one" }, null, false);

        double Time(string user)
        {
            var sw = Stopwatch.StartNew();
            var d = auth.Decide(Reply(user), "/timing", peer);
            double ms = sw.Elapsed.TotalMilliseconds;
            Assert.Equal(user == "alice" ? AuthOutcome.BadPassword : AuthOutcome.UnknownUser, d.Outcome);
            Assert.Equal("login failed", d.Message); // and the same words
            return ms;
        }

        Time("alice"); // warm-up
        Time("nobody");
        // Interleaved, so that whatever else the machine does weighs on both alike; medians against outliers.
        var wrongs = new List<double>();
        var unknowns = new List<double>();
        for (int i = 0; i < 9; i++)
        {
            wrongs.Add(Time("alice"));
            unknowns.Add(Time("nobody"));
        }
        double wrong = wrongs.Order().ElementAt(4), unknown = unknowns.Order().ElementAt(4);
        // Both run one PBKDF2 of the same cost; a leak would be a factor of hundreds (no hash at all).
        Assert.InRange(unknown / wrong, 0.5, 2.0);
    }
}
