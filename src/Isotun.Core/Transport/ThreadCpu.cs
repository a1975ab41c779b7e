using System.Runtime.InteropServices;

namespace Isotun.Transport;

/// <summary>
/// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID). Hand-written: .NET has no cheap per-thread CPU clock
/// (ProcessThread reads /proc), and the crypto meter reads it twice per sampled record on the data path.
/// </summary>
internal static partial class ThreadCpu
{
    private const int ClockThreadCpuTime = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc")]
    private static partial int clock_gettime(int clock, out Timespec time);

    private const int RusageThread = 1;

    // struct rusage on 64-bit Linux: two timevals, then 14 longs; the last two count context switches.
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct Rusage
    {
        public fixed long Times[4];
        public fixed long Counts[14];
    }

    [LibraryImport("libc")]
    private static partial int getrusage(int who, out Rusage usage);

    /// <summary>How many times this thread has been switched out (voluntarily or preempted).</summary>
    public static unsafe long Switches() => getrusage(RusageThread, out var u) == 0 ? u.Counts[12] + u.Counts[13] : 0;

    /// <summary>Nanoseconds of CPU this thread has used.</summary>
    public static long NowNs() => clock_gettime(ClockThreadCpuTime, out var t) == 0 ? t.Seconds * 1_000_000_000 + t.Nanoseconds : 0;

    /// <summary>
    /// The CPU one <see cref="NowNs"/> costs (it is a system call: the vDSO does not serve thread clocks), measured once.
    /// A span timed between two reads holds the second half of the first and the first half of the second: one read's
    /// cost that is not the work timed. Left in, it would be multiplied with every sample's weight.
    /// </summary>
    public static long ReadCostNs { get; } = MeasureReadCost();

    private static long MeasureReadCost()
    {
        const int Reads = 200;
        long best = long.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            long first = NowNs(), last = first;
            for (int i = 0; i < Reads; i++) last = NowNs();
            best = Math.Min(best, (last - first) / Reads); // the least disturbed round
        }
        return best;
    }
}
