using Isotun.Metrics;

namespace Isotun.Transport;

/// <summary>
/// Samples one TLS connection's record work for its tenant's <see cref="CryptoMeter"/>: one write and one read in
/// every <see cref="SampleEvery"/> is timed with the thread's CPU clock around the SslStream call, less the CPU of the
/// socket calls made under it (which the <see cref="WriteCoalescingStream"/> times). What is left is encryption or
/// decryption and the record framing around it. A call that did not finish on the spot (the thread may change before
/// it ends) is not a sample, nor one during which the thread was switched out (the switch's kernel time would count);
/// then the next call is timed instead, so that a connection whose reads mostly wait for data (a slow stock client)
/// is still measured; each further miss doubles the wait before the next try, up to <see cref="SampleEvery"/> calls,
/// so a connection whose every read waits (an idle ping's) pays the timing no more often than a busy one. Four
/// system calls per timed call, so the rest of the traffic pays nothing. The clock reads' own cost
/// inside a span (<see cref="ThreadCpu.ReadCostNs"/>) is taken out: left in, a sample in 16 would carry it 16 times
/// over into the estimate (on a 2-vCPU VM, about 14 points of crypto share that perf does not see).
/// </summary>
public sealed class CryptoSampler(CryptoMeter meter, WriteCoalescingStream under)
{
    public const int SampleEvery = 16;

    private int _writes, _reads; // one writer and one reader per connection: no interlocking
    private int _nextWrite = SampleEvery, _nextRead = SampleEvery; // the call to time next
    private int _writeGap = 1, _readGap = 1; // calls from a miss to the next try
    private long _writeSwitches, _readSwitches;

    /// <summary>Whether to time this write; then call <see cref="BeginWrite"/> and <see cref="EndWrite"/> around it.</summary>
    public bool SampleWrite() => unchecked(++_writes - _nextWrite) >= 0;

    public bool SampleRead() => unchecked(++_reads - _nextRead) >= 0;

    /// <summary>The next call to time after one that was timed: <see cref="SampleEvery"/> on after a sample, else after the gap, which doubles.</summary>
    private static int Next(int count, bool sampled, ref int gap)
    {
        if (sampled)
        {
            gap = 1;
            return unchecked(count + SampleEvery);
        }
        int next = unchecked(count + gap);
        gap = Math.Min(gap * 2, SampleEvery);
        return next;
    }

    public long BeginWrite()
    {
        under.BeginWriteTiming();
        _writeSwitches = ThreadCpu.Switches();
        return ThreadCpu.NowNs();
    }

    public void EndWrite(long start, bool completed, int bytes)
    {
        long spent = ThreadCpu.NowNs() - start, socket = under.EndWriteTiming();
        bool sampled = completed && socket >= 0 && bytes > 0 && ThreadCpu.Switches() == _writeSwitches;
        _nextWrite = Next(_writes, sampled, ref _writeGap);
        if (sampled) meter.Encrypted(Math.Max(0, spent - socket - ThreadCpu.ReadCostNs), bytes);
    }

    public long BeginRead()
    {
        under.BeginReadTiming();
        _readSwitches = ThreadCpu.Switches();
        return ThreadCpu.NowNs();
    }

    public void EndRead(long start, bool completed, int bytes)
    {
        long spent = ThreadCpu.NowNs() - start, socket = under.EndReadTiming();
        bool sampled = completed && socket >= 0 && bytes > 0 && ThreadCpu.Switches() == _readSwitches;
        _nextRead = Next(_reads, sampled, ref _readGap);
        if (sampled) meter.Decrypted(Math.Max(0, spent - socket - ThreadCpu.ReadCostNs), bytes);
    }
}
