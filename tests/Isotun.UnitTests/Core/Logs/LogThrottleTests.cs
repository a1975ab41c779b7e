using Isotun.Logs;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Logs;

public sealed class LogThrottleTests
{
    [Fact]
    public void A_flood_is_cut_to_the_burst_and_the_next_period_reports_how_many_were_dropped()
    {
        var time = new FakeTimeProvider();
        var throttle = new LogThrottle(burst: 3, periodSeconds: 10, time);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(throttle.Allow("closed bad-request", out long none));
            Assert.Equal(0, none);
        }
        for (int i = 0; i < 50; i++) Assert.False(throttle.Allow("closed bad-request", out _));

        time.Advance(TimeSpan.FromSeconds(11));
        Assert.True(throttle.Allow("closed bad-request", out long suppressed));
        Assert.Equal(50, suppressed);
        Assert.True(throttle.Allow("closed bad-request", out suppressed));
        Assert.Equal(0, suppressed);
    }

    [Fact]
    public void Each_reason_has_its_own_budget()
    {
        var throttle = new LogThrottle(burst: 1, periodSeconds: 10, new FakeTimeProvider());
        Assert.True(throttle.Allow("closed handshake-failed", out _));
        Assert.False(throttle.Allow("closed handshake-failed", out _));
        Assert.True(throttle.Allow("login bad-password", out _));
    }
}
