using System.Net;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Limits;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Gateway;

public class ConnectionLimiterTests
{
    private static readonly IPAddress A = IPAddress.Parse("198.18.20.2");
    private static readonly IPAddress B = IPAddress.Parse("198.18.24.2");

    private static GatewayLimits Limits(int max = 100, int perIp = 100, int rate = 10, int burst = 10, int banAfter = 3) =>
        GatewayLimits.Defaults with
        {
            MaxConnections = max, PerIpConnections = perIp, PerIpRate = rate, PerIpBurst = burst, BanAfterFailures = banAfter,
            FailureWindow = TimeSpan.FromSeconds(60), BanTime = TimeSpan.FromSeconds(300),
        };

    [Fact]
    public void The_rate_is_a_token_bucket_per_address()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(rate: 2, burst: 4), time);
        for (int i = 0; i < 4; i++) { Assert.Equal(Admission.Accepted, limiter.TryAdmit(A)); limiter.Release(A); }
        Assert.Equal(Admission.IpRate, limiter.TryAdmit(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(B)); // another address has its own bucket
        limiter.Release(B);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(Admission.IpRate, limiter.TryAdmit(A));
    }

    [Fact]
    public void Concurrency_is_capped_per_address_and_globally()
    {
        var limiter = new ConnectionLimiter(Limits(max: 3, perIp: 2), new FakeTimeProvider());
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(Admission.IpConcurrency, limiter.TryAdmit(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(B));
        Assert.Equal(Admission.GlobalCap, limiter.TryAdmit(B));
        limiter.Release(A);
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(3, limiter.Active);
    }

    [Fact]
    public void Repeated_failures_ban_for_a_while()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(banAfter: 3), time);
        Assert.False(limiter.RecordFailure(A));
        Assert.False(limiter.RecordFailure(A));
        Assert.True(limiter.RecordFailure(A));
        Assert.Equal(Admission.Banned, limiter.TryAdmit(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(B));
        time.Advance(TimeSpan.FromSeconds(301));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
    }

    [Fact]
    public void Failures_outside_the_window_do_not_add_up()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(banAfter: 3), time);
        limiter.RecordFailure(A);
        limiter.RecordFailure(A);
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.False(limiter.RecordFailure(A));
        Assert.False(limiter.RecordFailure(A));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
    }

    [Fact]
    public void Ban_after_zero_never_bans()
    {
        var limiter = new ConnectionLimiter(Limits(banAfter: 0), new FakeTimeProvider());
        for (int i = 0; i < 100; i++) Assert.False(limiter.RecordFailure(A));
        Assert.False(limiter.IsBanned(A));
    }

    [Fact]
    public void The_address_table_is_bounded_and_swept()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(), time, maxTrackedAddresses: 10);
        for (int i = 0; i < 10; i++)
        {
            var ip = IPAddress.Parse($"198.18.30.{i + 1}");
            Assert.Equal(Admission.Accepted, limiter.TryAdmit(ip));
            limiter.Release(ip);
        }

        // Full: a new address goes through the shared overflow bucket, untracked.
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(IPAddress.Parse("198.18.31.1")));
        limiter.Release(IPAddress.Parse("198.18.31.1"));
        Assert.Equal(1, limiter.Overflowed);
        Assert.Equal(10, limiter.TrackedAddresses);
        time.Advance(TimeSpan.FromSeconds(120));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(IPAddress.Parse("198.18.31.1")));
        Assert.Equal(1, limiter.Overflowed); // tracked again, after the sweep
        Assert.True(limiter.TrackedAddresses <= 10);
        Assert.Equal(1, limiter.Active);
    }

    /// <summary>
    /// A connection that came in through the overflow bucket (the table full) and closes after its address got an
    /// entry takes nothing from that entry: the address keeps no more connections than its cap.
    /// </summary>
    [Fact]
    public void Closing_an_overflow_connection_frees_no_slot_of_the_entry_its_address_got_since()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(perIp: 1), time, maxTrackedAddresses: 2);
        var x = IPAddress.Parse("198.18.31.1");
        for (int i = 0; i < 2; i++)
        {
            var ip = IPAddress.Parse($"198.18.30.{i + 1}");
            Assert.Equal(Admission.Accepted, limiter.TryAdmit(ip));
            limiter.Release(ip);
        }
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(x)); // #1, through the overflow bucket
        Assert.Equal(1, limiter.Overflowed);
        time.Advance(TimeSpan.FromSeconds(120)); // the idle entries are swept at the next admission
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(x)); // #2, tracked: x's one connection by its entry
        Assert.Equal(Admission.IpConcurrency, limiter.TryAdmit(x));
        limiter.Release(x); // #1 closes
        Assert.Equal(Admission.IpConcurrency, limiter.TryAdmit(x)); // #2 is still open: x is at its cap
        limiter.Release(x); // #2 closes
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(x));
        Assert.Equal(1, limiter.Active);
    }

    /// <summary>The cap on all connections holds when accept loops on several cores admit different addresses at once.</summary>
    [Fact]
    public void The_global_cap_holds_under_admissions_at_once()
    {
        var limiter = new ConnectionLimiter(Limits(max: 50, rate: 1000, burst: 1000), new FakeTimeProvider());
        int accepted = 0;
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            if (limiter.TryAdmit(IPAddress.Parse($"198.18.{40 + i / 250}.{i % 250 + 1}")) == Admission.Accepted) Interlocked.Increment(ref accepted);
        });
        Assert.Equal(50, accepted);
        Assert.Equal(50, limiter.Active);
    }

    [Fact]
    public void A_table_full_of_live_entries_is_swept_once_a_second_not_at_every_connection()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(Limits(), time, maxTrackedAddresses: 10);
        for (int i = 0; i < 10; i++) Assert.Equal(Admission.Accepted, limiter.TryAdmit(IPAddress.Parse($"198.18.30.{i + 1}"))); // held open
        long sweeps = limiter.Sweeps;
        // New addresses share the overflow bucket: ten times one address's burst (10), then its rate; never a ban.
        int admitted = 0;
        for (int i = 0; i < 1000; i++)
        {
            var ip = IPAddress.Parse($"198.18.32.{i % 250 + 1}");
            var result = limiter.TryAdmit(ip);
            Assert.True(result is Admission.Accepted or Admission.IpRate, result.ToString());
            if (result == Admission.Accepted)
            {
                admitted++;
                limiter.Release(ip);
            }
            else Assert.False(limiter.RecordFailure(ip)); // a refusal there bans nobody
        }
        Assert.Equal(10 * ConnectionLimiter.OverflowShare, admitted);
        Assert.True(limiter.Sweeps - sweeps <= 1, $"{limiter.Sweeps - sweeps} sweeps for 1,000 connections within a second");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(IPAddress.Parse("198.18.33.1")));
        Assert.True(limiter.Sweeps - sweeps <= 2);
        Assert.Equal(10, limiter.TrackedAddresses);

        // Once one source has gone quiet, its place is free at the next sweep.
        limiter.Release(IPAddress.Parse("198.18.30.1"));
        time.Advance(TimeSpan.FromSeconds(120));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(IPAddress.Parse("198.18.33.1")));
        Assert.Equal(10, limiter.TrackedAddresses);
    }

    [Fact]
    public void New_limits_apply_to_new_connections()
    {
        var limiter = new ConnectionLimiter(Limits(perIp: 1), new FakeTimeProvider());
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
        Assert.Equal(Admission.IpConcurrency, limiter.TryAdmit(A));
        limiter.Update(Limits(perIp: 2));
        Assert.Equal(Admission.Accepted, limiter.TryAdmit(A));
    }
}
