using Isotun.Metrics;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// One read in 16 is timed; one that could not be a sample (it waited for data) passes the turn to the next, and each
/// further miss doubles the wait for the next try, up to 16 reads.
/// </summary>
public class CryptoSamplerTests
{
    [Fact]
    public void A_read_that_was_no_sample_makes_a_later_one_timed_sooner_and_sooner_until_one_is()
    {
        var meter = new CryptoMeter();
        var sampler = new CryptoSampler(meter, new WriteCoalescingStream(Stream.Null));
        for (int i = 1; i < CryptoSampler.SampleEvery; i++) Assert.False(sampler.SampleRead());
        Assert.True(sampler.SampleRead());

        // Each waited for data: no sample; the next try comes after 1, 2, 4, 8, 16, 16 reads.
        foreach (int gap in new[] { 1, 2, 4, 8, 16, 16 })
        {
            sampler.EndRead(sampler.BeginRead(), completed: false, bytes: 0);
            for (int i = 1; i < gap; i++) Assert.False(sampler.SampleRead(), $"read {i} of a gap of {gap} was timed");
            Assert.True(sampler.SampleRead(), $"the read after a gap of {gap} was not timed");
        }
        Assert.Equal(0, meter.Estimate(encrypt: false, 1_000_000));

        // Done on the spot: a sample, and the turns go back to one in 16.
        var start = sampler.BeginRead();
        for (int i = 0; i < 10_000; i++) _ = i * i; // some CPU to time
        sampler.EndRead(start, completed: true, bytes: 1500);
        if (meter.Estimate(encrypt: false, 1_000_000) > 0) // unless the thread was switched out meanwhile (then it is owed again)
            Assert.False(sampler.SampleRead());
    }

    [Fact]
    public void The_clock_reads_own_cost_is_not_counted_as_record_work()
    {
        // Spans with nothing in them: all they measure is the clock reads around them, which are taken out. Left in,
        // each would count about one read's cost (and a sample's weight multiplies it into the estimate).
        const int Spans = 2000;
        var sampler = new CryptoSampler(new CryptoMeter(), new WriteCoalescingStream(Stream.Null));
        for (int i = 0; i < Spans; i++) sampler.EndRead(sampler.BeginRead(), completed: true, bytes: 1); // warm
        var meter = new CryptoMeter();
        sampler = new CryptoSampler(meter, new WriteCoalescingStream(Stream.Null));
        for (int i = 0; i < Spans; i++) sampler.EndRead(sampler.BeginRead(), completed: true, bytes: 1);
        Assert.True(ThreadCpu.ReadCostNs > 0, "the clock read's cost was not measured");
        double leftNs = meter.Estimate(encrypt: false, totalBytes: 0) * 1e9; // the sampled spans' own nanoseconds
        Assert.True(leftNs < Spans * ThreadCpu.ReadCostNs,
            $"{leftNs / Spans:F0} ns left per empty span, with one clock read costing {ThreadCpu.ReadCostNs} ns");
    }
}
