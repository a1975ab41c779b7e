using Isotun.Transport;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// The per-user shaper, on a fake clock. Rates are powers of two so every wait is exact in binary floating
/// point and can be compared to the tick.
/// </summary>
public class TokenBucketTests
{
    private const long Rate = 1 << 20;          // 1 MiB/s: burst = rate / 10 = 104857.6 bytes
    private const long SlowRate = 1 << 13;      // 8 KiB/s: burst = the 64 KiB floor

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_rate_must_be_positive(long rate)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(rate, new FakeTimeProvider()));
    }

    [Fact]
    public void The_burst_is_a_tenth_of_a_second_of_the_rate()
    {
        var bucket = new TokenBucket(Rate, new FakeTimeProvider());
        Assert.Equal(Rate, bucket.Rate);
        Assert.Equal(TimeSpan.Zero, bucket.Take(104_857));
        // 0.6 bytes left: one more byte is 0.4 bytes of debt.
        Assert.Equal(TimeSpan.FromSeconds(0.4 / Rate), bucket.Take(1));
    }

    /// <summary>
    /// A new rate applies to the next bytes, with the tokens earned kept up to the new burst; a rate of 0 lets everything
    /// through, and a bucket given a rate again starts full.
    /// </summary>
    [Fact]
    public void A_new_rate_applies_at_once_and_zero_means_no_limit()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));
        Assert.Equal(TimeSpan.FromSeconds(1), bucket.Take(8_192)); // 8 KiB of debt at 8 KiB/s
        bucket.SetRate(SlowRate * 2);
        Assert.Equal(SlowRate * 2, bucket.Rate);
        Assert.Equal(TimeSpan.FromSeconds(0.5), bucket.Take(0)); // the same debt, paid twice as fast

        bucket.SetRate(0);
        Assert.Equal(0, bucket.Rate);
        Assert.Equal(TimeSpan.Zero, bucket.Take(10_000_000));
        Assert.True(bucket.WaitAsync(10_000_000, CancellationToken.None).IsCompleted);

        bucket.SetRate(SlowRate);
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536)); // full again: a whole burst
        Assert.Equal(TimeSpan.FromSeconds(1.0 / 8192), bucket.Take(1));
    }

    [Fact]
    public void A_slow_rate_still_allows_a_64_KiB_burst()
    {
        var bucket = new TokenBucket(SlowRate, new FakeTimeProvider());
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));
        Assert.Equal(TimeSpan.FromSeconds(1.0 / 8192), bucket.Take(1));
    }

    [Fact]
    public void Debt_is_paid_at_the_rate_and_the_wait_is_exact()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));

        // 16 KiB of debt at 8 KiB/s is two seconds.
        Assert.Equal(TimeSpan.FromSeconds(2), bucket.Take(16_384));
        // More debt adds up: another 8 KiB makes three seconds in all.
        Assert.Equal(TimeSpan.FromSeconds(3), bucket.Take(8_192));

        // Half a second later the debt is 20 KiB: 2.5 s.
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(TimeSpan.FromSeconds(2.5), bucket.Take(0));

        // Once paid, the bucket is even again; a byte then owes exactly 1/rate.
        time.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(TimeSpan.Zero, bucket.Take(0));
        Assert.Equal(TimeSpan.FromSeconds(1.0 / 8192), bucket.Take(1));
    }

    [Fact]
    public void Idle_time_refills_only_up_to_the_burst()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));
        time.Advance(TimeSpan.FromHours(1));   // worth 28 MiB, but the bucket holds 64 KiB
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));
        Assert.Equal(TimeSpan.FromSeconds(1), bucket.Take(8_192));
    }

    [Fact]
    public void Partial_refill_is_proportional_to_the_time_passed()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        Assert.Equal(TimeSpan.Zero, bucket.Take(65_536));
        time.Advance(TimeSpan.FromSeconds(0.25));     // 2 KiB back
        Assert.Equal(TimeSpan.Zero, bucket.Take(2_048));
        Assert.Equal(TimeSpan.FromSeconds(0.125), bucket.Take(1_024));
    }

    [Fact]
    public async Task WaitAsync_completes_at_once_within_the_burst_and_otherwise_waits_for_the_clock()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        Assert.True(bucket.WaitAsync(65_536, default).IsCompletedSuccessfully);

        // Under a millisecond of debt is let through and paid by later waits.
        Assert.True(bucket.WaitAsync(4, default).IsCompletedSuccessfully);

        var wait = bucket.WaitAsync(8_188, default).AsTask(); // now 8192 bytes of debt: one second
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.5));
        await wait.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task WaitAsync_is_cancellable()
    {
        var time = new FakeTimeProvider();
        var bucket = new TokenBucket(SlowRate, time);
        bucket.Take(65_536 + 8_192);
        using var cts = new CancellationTokenSource();
        var wait = bucket.WaitAsync(1, cts.Token).AsTask();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void Concurrent_takers_share_one_bucket()
    {
        // The limit is per user, shared by the user's sessions: takes from many threads add up exactly.
        var bucket = new TokenBucket(SlowRate, new FakeTimeProvider());
        Parallel.For(0, 64, _ => bucket.Take(1_024));    // 64 KiB: exactly the burst
        Assert.Equal(TimeSpan.FromSeconds(1), bucket.Take(8_192));
    }
}
