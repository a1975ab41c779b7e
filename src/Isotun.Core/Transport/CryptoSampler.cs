using Isotun.Metrics;

namespace Isotun.Transport;

/// <summary>
/// Samples one TLS connection's record work for its tenant's <see cref="CryptoMeter"/>: one write and one read in
/// every <see cref="SampleEvery"/> is timed with the thread's CPU clock around the SslStream call, less the CPU of the
/// socket calls made under it (which the <see cref="WriteCoalescingStream"/> times). What is left is encryption or
/// decryption and the record framing around it. A call that did not finish on the spot (the thread may change before
/// it ends) is not a sample, nor one during which the thread was switched out (the switch's kernel time would count);
/// then the next call is timed instead, so that a connection whose reads mostly wait for data (a slow stock client)
/// is still measured. Four system calls per sample, so the rest of the traffic pays nothing. The clock reads' own cost
/// inside a span (<see cref="ThreadCpu.ReadCostNs"/>) is taken out: left in, a sample in 16 would carry it 16 times
/// over into the estimate (on a 2-vCPU VM, about 14 points of crypto share that perf does not see).
/// </summary>
public sealed class CryptoSampler(CryptoMeter meter, WriteCoalescingStream under)
{
    public const int SampleEvery = 16;

    private int _writes, _reads; // one writer and one reader per connection: no interlocking
    private long _writeSwitches, _readSwitches;
    private bool _writeOwed, _readOwed; // the last timed call was no sample: time the next one

    /// <summary>Whether to time this write; then call <see cref="BeginWrite"/> and <see cref="EndWrite"/> around it.</summary>
    public bool SampleWrite() => (++_writes & (SampleEvery - 1)) == 0 || _writeOwed;

    public bool SampleRead() => (++_reads & (SampleEvery - 1)) == 0 || _readOwed;

    public long BeginWrite()
    {
        under.BeginWriteTiming();
        _writeSwitches = ThreadCpu.Switches();
        return ThreadCpu.NowNs();
    }

    public void EndWrite(long start, bool completed, int bytes)
    {
        long spent = ThreadCpu.NowNs() - start, socket = under.EndWriteTiming();
        _writeOwed = !(completed && socket >= 0 && bytes > 0 && ThreadCpu.Switches() == _writeSwitches);
        if (!_writeOwed) meter.Encrypted(Math.Max(0, spent - socket - ThreadCpu.ReadCostNs), bytes);
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
        _readOwed = !(completed && socket >= 0 && bytes > 0 && ThreadCpu.Switches() == _readSwitches);
        if (!_readOwed) meter.Decrypted(Math.Max(0, spent - socket - ThreadCpu.ReadCostNs), bytes);
    }
}
