using Isotun.State.Cluster;
using Isotun.UnitTests.InProcess;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The keepalive loop both stores use: it retries what is transient, and never stops renewing without a word.</summary>
public sealed class LeaseKeeperTests
{
    [Fact]
    public async Task A_transient_failure_is_retried_and_the_lease_stays()
    {
        int calls = 0;
        await using var keeper = new LeaseKeeper(7, _ => Interlocked.Increment(ref calls) <= 3
            ? throw new IOException("stream broken (test)")
            : Task.FromResult<TimeSpan?>(TimeSpan.FromMilliseconds(10)), e => e is IOException, TimeProvider.System);

        Assert.True(await Eventually.Holds(() => Volatile.Read(ref calls) > 5), "the keeper stopped after a transient failure");
        Assert.False(keeper.Lost.IsCompleted);
        Assert.Null(keeper.Failure);
    }

    [Fact]
    public async Task A_failure_that_is_not_transient_reports_the_lease_lost_with_its_cause()
    {
        var boom = new InvalidOperationException("the client is broken (test)");
        await using var keeper = new LeaseKeeper(7, _ => throw boom, e => e is IOException, TimeProvider.System);

        Assert.Same(keeper.Lost, await Task.WhenAny(keeper.Lost, Task.Delay(Eventually.Deadline)));
        Assert.Same(boom, keeper.Failure);
    }

    [Fact]
    public async Task A_renewal_that_finds_the_lease_ended_reports_it_lost_without_a_failure()
    {
        await using var keeper = new LeaseKeeper(7, _ => Task.FromResult<TimeSpan?>(null), _ => false, TimeProvider.System);

        Assert.Same(keeper.Lost, await Task.WhenAny(keeper.Lost, Task.Delay(Eventually.Deadline)));
        Assert.Null(keeper.Failure);
    }
}
