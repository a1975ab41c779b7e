using Isotun.Integration.Infrastructure;
using Isotun.Linux;

namespace Isotun.Integration.Tun;

/// <summary>
/// A real TUN queue's wait for a packet has no timeout (an idle tenant's reader threads never wake), so a stop must
/// interrupt it: shown on a TUN device in a namespace of the test's own.
/// </summary>
public sealed class TunDeviceWaitTests
{
    [SkippableFact]
    public void A_wait_without_timeout_ends_on_a_packet_or_an_interrupt_and_later_waits_end_at_once()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        string ns = $"isotun-tunwait-{Environment.ProcessId}";
        Assert.Equal(0, Run.Exec("ip", ["netns", "add", ns]).ExitCode);
        try
        {
            // No IPv6 on the new link: its router solicitations would end a wait that must not end yet.
            Assert.Equal(0, Run.InNs(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6").ExitCode);
            using var tun = NetworkNamespace.Run(ns, () => TunDevice.Open("itw0"));
            Assert.Equal(0, Run.Exec("ip", ["-n", ns, "addr", "add", "198.18.250.1/24", "dev", "itw0"]).ExitCode);
            Assert.Equal(0, Run.Exec("ip", ["-n", ns, "link", "set", "itw0", "up"]).ExitCode);

            // A packet ends the wait: a datagram routed out of the TUN.
            var waited = Task.Factory.StartNew(() => tun.WaitReadable(Timeout.Infinite), TaskCreationOptions.LongRunning);
            Assert.False(waited.Wait(300), "the wait ended with nothing to read");
            Assert.Equal(0, Run.InNs(ns, "bash", "-c", "echo x > /dev/udp/198.18.250.2/9").ExitCode);
            Assert.True(waited.Wait(TimeSpan.FromSeconds(10)) && waited.Result, "a packet did not end the wait");
            Drain(tun);

            // An interrupt ends it too, with nothing to read; and every wait after it ends at once.
            waited = Task.Factory.StartNew(() => tun.WaitReadable(Timeout.Infinite), TaskCreationOptions.LongRunning);
            Assert.False(waited.Wait(300), "the wait ended with nothing to read");
            tun.Interrupt();
            Assert.True(waited.Wait(TimeSpan.FromSeconds(10)) && waited.Result, "the interrupt did not end the wait");
            Assert.True(tun.WaitReadable(Timeout.Infinite));
            Span<int> size = stackalloc int[1];
            Memory<byte> buffer = new byte[2048];
            Assert.Equal(0, tun.Read(new ReadOnlySpan<Memory<byte>>(in buffer), size, 0));
        }
        finally
        {
            Run.Exec("ip", ["netns", "del", ns]);
        }
    }

    private static void Drain(TunDevice tun)
    {
        Span<int> size = stackalloc int[1];
        Memory<byte> buffer = new byte[2048];
        while (tun.WaitReadable(200) && tun.Read(new ReadOnlySpan<Memory<byte>>(in buffer), size, 0) > 0) { }
    }
}
