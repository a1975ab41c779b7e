using System.Diagnostics;
using Isotun.Lab;

namespace Isotun.UnitTests.Core.Lab;

/// <summary>The lab ends its processes by PID: only ones that are really there, and really the ones it started.</summary>
public class LabProcessTests
{
    [Fact]
    public void A_running_process_is_alive_and_a_finished_one_reads_as_gone_without_throwing()
    {
        Assert.True(LabProcess.IsAlive(Environment.ProcessId));
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        int pid = p.Id;
        p.Dispose(); // reaped: /proc/PID is gone
        Assert.False(LabProcess.IsAlive(pid));
        Assert.False(LabProcess.IsAlive(int.MaxValue));
    }

    [Fact]
    public void A_pid_file_older_than_the_process_it_names_is_not_that_process()
    {
        var started = Process.GetCurrentProcess().StartTime.ToUniversalTime();
        Assert.True(LabProcess.StartedBefore(Environment.ProcessId, DateTime.UtcNow));
        Assert.True(LabProcess.StartedBefore(Environment.ProcessId, started));
        // A file written an hour before this process started names a process that has since gone.
        Assert.False(LabProcess.StartedBefore(Environment.ProcessId, started.AddHours(-1)));
        Assert.False(LabProcess.StartedBefore(int.MaxValue, DateTime.UtcNow));
    }
}
