using Isotun.Server;
using Isotun.Transport;
using Isotun.Tun;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// The thread that reads a tenant's TUN queue: while the queue is idle it waits without waking (no timeout to poll
/// on), and a stop interrupts that wait. The same wait on a real TUN device is in the integration suite.
/// </summary>
public sealed class TunQueueReaderTests
{
    [Fact]
    public void An_idle_queue_keeps_its_reader_asleep_until_a_packet_or_the_stop()
    {
        using var device = new MemoryTun("t0");
        var queue = device.Queues[0];
        int forwarded = 0;
        var reader = new TunQueueReader(queue, "tun-test-0", 2048, (_, _, _) => { Interlocked.Increment(ref forwarded); return false; },
            failure => Assert.Fail(failure));
        reader.Start();
        Assert.True(SpinWait.SpinUntil(() => queue.Waits == 1, TimeSpan.FromSeconds(5)), "the reader never waited");

        Thread.Sleep(1200); // the old reader woke every 250 ms to look for a stop
        Assert.Equal(1, queue.Waits);

        Assert.True(queue.Inject(new byte[] { 0x45, 0, 0, 20 }.Concat(new byte[16]).ToArray()));
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref forwarded) == 1 && queue.Waits == 2, TimeSpan.FromSeconds(5)),
            $"forwarded {forwarded}, waits {queue.Waits}");

        Assert.True(reader.Stop(TimeSpan.FromSeconds(5)), "the reader did not end when stopped");
        Assert.Equal(0, queue.Waiting);
    }
}
