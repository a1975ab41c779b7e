using Isotun.Integration.Infrastructure;
using Isotun.Linux;

namespace Isotun.Integration;

/// <summary>`isotun doctor`, the real executable on this host: in the root namespace and in a bare one.</summary>
public sealed class DoctorTests
{
    private static readonly string[] Checks = ["tun", "mtu", "queues", "crypto", "interrupts"];

    [SkippableFact]
    public void The_doctor_reports_every_check_here_and_points_a_bare_namespace_at_the_hosts_nic()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var here = Run.Exec(TestEnvironment.IsotunExe, ["doctor"]);
        Assert.True(here.ExitCode is 0 or 3, here.ToString());
        foreach (var check in Checks) Assert.Contains($"\n{check} ", "\n" + here.Stdout);
        // Every warning comes with what to change, and the last line counts them.
        int warnings = here.Stdout.Split('\n').Count(l => l.Contains(" WARN ", StringComparison.Ordinal));
        Assert.Equal(warnings, here.Stdout.Split('\n').Count(l => l.TrimStart().StartsWith("-> ", StringComparison.Ordinal)));
        Assert.EndsWith(warnings == 0 ? "nothing to change" : $"{warnings} thing{(warnings == 1 ? "" : "s")} to change", here.Stdout.Trim());
        Assert.Equal(warnings == 0 ? 0 : 3, here.ExitCode);

        string ns = $"isotun-doctor-{Environment.ProcessId}";
        IpCommand.Run("netns", "add", ns);
        try
        {
            var bare = Run.Isotun(ns, ["doctor", "--mtu", "1400"]);
            Assert.True(bare.ExitCode is 0 or 3, bare.ToString());
            Assert.Contains("no interface up but loopback", bare.Stdout);
            Assert.Contains("look at the host's NIC", bare.Stdout);
        }
        finally
        {
            IpCommand.TryRun("netns", "del", ns);
        }
    }

    [Fact]
    public void A_tunnel_mtu_out_of_range_is_a_usage_error()
    {
        var bad = Run.Exec(TestEnvironment.IsotunExe, ["doctor", "--mtu", "100"]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--mtu must be between 576 and 9000", bad.Stderr);
    }
}
