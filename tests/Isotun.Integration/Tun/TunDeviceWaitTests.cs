using Isotun.Integration.Infrastructure;
using Isotun.Linux;

namespace Isotun.Integration.Tun;

/// <summary>
/// A real TUN queue's wait for a packet has no timeout (an idle tenant's reader threads never wake), so a stop must
/// interrupt it; and a connection that reads the answer to its own write can keep that answer from waking the wait.
/// Shown on a TUN device in a namespace of the test's own.
/// </summary>
public sealed class TunDeviceWaitTests
{
    [SkippableFact]
    public void A_wait_without_timeout_ends_on_a_packet_or_an_interrupt_and_later_waits_end_at_once()
    {
        InTun("isotun-tunwait", (tun, sendThrough) =>
        {
            // A packet ends the wait: a datagram routed out of the TUN.
            var waited = Wait(tun);
            Assert.False(waited.Wait(300), "the wait ended with nothing to read");
            sendThrough();
            Assert.True(waited.Wait(TimeSpan.FromSeconds(10)) && waited.Result, "a packet did not end the wait");
            Drain(tun);

            // An interrupt ends it too, with nothing to read; and every wait after it ends at once.
            waited = Wait(tun);
            Assert.False(waited.Wait(300), "the wait ended with nothing to read");
            tun.Interrupt();
            Assert.True(waited.Wait(TimeSpan.FromSeconds(10)) && waited.Result, "the interrupt did not end the wait");
            Assert.True(tun.WaitReadable(Timeout.Infinite));
            Assert.Equal(0, ReadOne(tun));
        });
    }

    [SkippableFact]
    public void A_packet_that_comes_while_wakeups_are_suppressed_ends_the_wait_only_when_lifted_and_still_unread()
    {
        InTun("isotun-tunhold", (tun, sendThrough) =>
        {
            // Read by the one who suppressed, as a connection reads its ping's answer: the wait never ends for it.
            var waited = Wait(tun);
            Assert.False(waited.Wait(300), "the wait ended with nothing to read");
            tun.SuppressWakeups(true);
            sendThrough();
            Assert.False(waited.Wait(300), "a packet ended the wait while wake-ups were suppressed");
            Assert.True(ReadOne(tun) > 0, "the packet was not there to read");
            tun.SuppressWakeups(false);
            Assert.False(waited.Wait(300), "lifting the suppression ended the wait with nothing to read");

            // Suppressions nest; a packet still unread when the last is lifted ends the wait then.
            tun.SuppressWakeups(true);
            tun.SuppressWakeups(true);
            sendThrough();
            tun.SuppressWakeups(false);
            Assert.False(waited.Wait(300), "a packet ended the wait while wake-ups were still suppressed");
            tun.SuppressWakeups(false);
            Assert.True(waited.Wait(TimeSpan.FromSeconds(10)) && waited.Result, "lifting the suppression did not end the wait");
            Assert.True(ReadOne(tun) > 0, "the packet was not there to read");

            tun.Interrupt();
        });
    }

    /// <summary>Runs <paramref name="test"/> on a TUN device, up with an address, in a new namespace named after <paramref name="prefix"/>, with a way to send a packet out of it.</summary>
    private static void InTun(string prefix, Action<TunDevice, Action> test)
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        string ns = $"{prefix}-{Environment.ProcessId}";
        Assert.Equal(0, Run.Exec("ip", ["netns", "add", ns]).ExitCode);
        try
        {
            // No IPv6 on the new link: its router solicitations would end a wait that must not end yet.
            Assert.Equal(0, Run.InNs(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6").ExitCode);
            using var tun = NetworkNamespace.Run(ns, () => TunDevice.Open("itw0"));
            Assert.Equal(0, Run.Exec("ip", ["-n", ns, "addr", "add", "198.18.250.1/24", "dev", "itw0"]).ExitCode);
            Assert.Equal(0, Run.Exec("ip", ["-n", ns, "link", "set", "itw0", "up"]).ExitCode);
            // A datagram from the namespace routed out of the TUN.
            test(tun, () => Assert.Equal(0, Run.InNs(ns, "bash", "-c", "echo x > /dev/udp/198.18.250.2/9").ExitCode));
        }
        finally
        {
            Run.Exec("ip", ["netns", "del", ns]);
        }
    }

    private static Task<bool> Wait(TunDevice tun) => Task.Factory.StartNew(() => tun.WaitReadable(Timeout.Infinite), TaskCreationOptions.LongRunning);

    private static int ReadOne(TunDevice tun)
    {
        Span<int> size = stackalloc int[1];
        Memory<byte> buffer = new byte[2048];
        return tun.Read(new ReadOnlySpan<Memory<byte>>(in buffer), size, 0) > 0 ? size[0] : 0;
    }

    private static void Drain(TunDevice tun)
    {
        while (tun.WaitReadable(200) && ReadOne(tun) > 0) { }
    }
}
