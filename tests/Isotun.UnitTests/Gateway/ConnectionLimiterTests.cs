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
