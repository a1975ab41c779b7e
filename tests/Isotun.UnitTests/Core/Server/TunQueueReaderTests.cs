using Isotun.Server;
using Isotun.Transport;
using Isotun.Tun;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// The thread that reads a tenant's TUN queue: while the queue is idle it waits without waking (no timeout to poll
/// on), a stop interrupts that wait, and a connection that reads the answer to its own write keeps it from waking the
/// thread. The same waits on a real TUN device are in the integration suite.
/// </summary>
public sealed class TunQueueReaderTests
{
    [Fact]
    public void An_idle_queue_keeps_its_reader_asleep_until_a_packet_or_the_stop()
    {
        using var device = new MemoryTun("t0");
        var queue = device.Queues[0];
        int forwarded = 0;
        var reader = Start(queue, (_, _, _) => { Interlocked.Increment(ref forwarded); return false; });
        Assert.True(SpinWait.SpinUntil(() => queue.Waits == 1, TimeSpan.FromSeconds(5)), "the reader never waited");

        Thread.Sleep(1200); // the old reader woke every 250 ms to look for a stop
        Assert.Equal(1, queue.Waits);
        // The wait in progress is not busy time (the doctor reads a busy share of 80 % as a saturated reader).
        var (busy, running) = reader.Sample()!.Value;
        Assert.True(running >= 1.2, $"running {running} s");
        Assert.True(busy < 0.5, $"busy {busy} s of {running} s while the reader only waited");

        Assert.True(queue.Inject(Packet()));
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref forwarded) == 1 && queue.Waits == 2, TimeSpan.FromSeconds(5)),
            $"forwarded {forwarded}, waits {queue.Waits}");

        Assert.True(reader.Stop(TimeSpan.FromSeconds(5)), "the reader did not end when stopped");
        Assert.Equal(0, queue.Waiting);
    }

    [Fact]
    public void An_answer_a_connection_serves_itself_while_it_holds_the_wakeups_does_not_wake_the_reader()
    {
        using var device = new MemoryTun("t0");
        var queue = device.Queues[0];
        int forwarded = 0;
        var reader = Start(queue, (_, _, _) => { Interlocked.Increment(ref forwarded); return false; });
        try
        {
            Assert.True(SpinWait.SpinUntil(() => queue.Waits == 1, TimeSpan.FromSeconds(5)), "the reader never waited");

            // As a ping's reply: queued while the connection writes, then read and sent by the connection itself.
            Assert.True(reader.HoldWakeups());
            Assert.True(queue.Inject(Packet()));
            Thread.Sleep(300);
            Assert.Equal(0, Volatile.Read(ref forwarded));
            reader.ServeAfterWrite();
            Assert.Equal(1, Volatile.Read(ref forwarded));
            reader.ReleaseWakeups();
            Thread.Sleep(300);
            Assert.Equal(1, queue.Waits); // the reader slept through it all
            Assert.Equal(1, reader.ServedAfterWrite);

            // A packet still there when the hold ends wakes the reader then: nothing is left behind.
            Assert.True(reader.HoldWakeups());
            Assert.True(queue.Inject(Packet()));
            Thread.Sleep(300);
            Assert.Equal(1, Volatile.Read(ref forwarded));
            reader.ReleaseWakeups();
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref forwarded) == 2 && queue.Waits == 2, TimeSpan.FromSeconds(5)),
                $"forwarded {forwarded}, waits {queue.Waits}");
            Assert.Equal(1, reader.ServedAfterWrite);
        }
        finally
        {
            Assert.True(reader.Stop(TimeSpan.FromSeconds(5)), "the reader did not end when stopped");
        }
    }

    [Fact]
    public void A_busy_reader_is_not_held()
    {
        using var device = new MemoryTun("t0");
        var queue = device.Queues[0];
        using var inForward = new ManualResetEventSlim();
        using var goOn = new ManualResetEventSlim();
        var reader = Start(queue, (_, _, _) => { inForward.Set(); goOn.Wait(); return false; });
        try
        {
            Assert.True(queue.Inject(Packet()));
            Assert.True(inForward.Wait(TimeSpan.FromSeconds(5)), "the reader did not read the packet");
            Assert.False(reader.HoldWakeups());
        }
        finally
        {
            goOn.Set();
            Assert.True(reader.Stop(TimeSpan.FromSeconds(5)), "the reader did not end when stopped");
        }
    }

    private static TunQueueReader Start(MemoryTunQueue queue, TunQueueReader.Forward forward)
    {
        var reader = new TunQueueReader(queue, "tun-test-0", 2048, forward, failure => Assert.Fail(failure));
        reader.Start();
        return reader;
    }

    private static byte[] Packet() => new byte[] { 0x45, 0, 0, 20 }.Concat(new byte[16]).ToArray();
}
