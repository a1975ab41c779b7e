using Isotun.Transport;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>The timer under the per-connection watches, on a fake clock: re-armed as its check asks, done on null, and
/// silent after its disposal (which waits for a check in progress).</summary>
public sealed class RecheckTimerTests
{
    [Fact]
    public void Runs_when_its_check_asks_and_stops_when_the_check_is_done()
    {
        var time = new FakeTimeProvider();
        var runs = new List<TimeSpan>();
        var start = time.GetTimestamp();
        TimeSpan?[] answers = [TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(1), null];
        using var timer = new RecheckTimer(() =>
        {
            runs.Add(time.GetElapsedTime(start));
            return answers[runs.Count - 1];
        }, TimeSpan.FromSeconds(2), time);

        time.Advance(TimeSpan.FromSeconds(1.9));
        Assert.Empty(runs);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal([TimeSpan.FromSeconds(2)], runs);
        time.Advance(TimeSpan.FromSeconds(3));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal([TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(6)], runs);
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(3, runs.Count);
    }

    [Fact]
    public void No_check_runs_after_it_is_disposed()
    {
        var time = new FakeTimeProvider();
        int runs = 0;
        var timer = new RecheckTimer(() => { runs++; return TimeSpan.FromSeconds(1); }, TimeSpan.FromSeconds(1), time);
        time.Advance(TimeSpan.FromSeconds(1));
        timer.Dispose();
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1, runs);
    }

    [Fact]
    public async Task Dispose_returns_only_after_a_check_in_progress()
    {
        using var inCheck = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        bool finished = false;
        var timer = new RecheckTimer(() =>
        {
            inCheck.Set();
            release.Wait();
            finished = true;
            return null;
        }, TimeSpan.FromMilliseconds(1));
        Assert.True(inCheck.Wait(TimeSpan.FromSeconds(10)));
        var disposing = Task.Run(timer.Dispose);
        await Task.Delay(100);
        Assert.False(disposing.IsCompleted);
        release.Set();
        await disposing.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(finished);
    }
}
