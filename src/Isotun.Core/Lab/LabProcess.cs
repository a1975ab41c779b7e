using System.Diagnostics;

namespace Isotun.Lab;

/// <summary>Background processes of a lab, started inside a namespace and remembered by PID file.</summary>
public static class LabProcess
{
    /// <summary>
    /// Starts <paramref name="exe"/> in namespace <paramref name="ns"/>, detached, output to a log file.
    /// `sh` execs `setsid`, which execs `nsenter`, which execs the program: the PID stays the same.
    /// nsenter enters only the network namespace; `ip netns exec` would also give the program a private
    /// mount namespace, and namespaces the server creates for tenants would then be invisible outside it.
    /// </summary>
    public static int Start(LabLayout lab, string name, string ns, string exe, IEnumerable<string> args, string? stdinFile = null)
    {
        Directory.CreateDirectory(lab.LogDir);
        Directory.CreateDirectory(lab.PidDir);
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" >\"$LAB_LOG\" 2>&1 <\"$LAB_IN\"");
        psi.ArgumentList.Add("sh");
        foreach (var a in (string[])["setsid", "nsenter", $"--net=/var/run/netns/{ns}", exe, .. args]) psi.ArgumentList.Add(a);
        psi.Environment["LAB_LOG"] = LogPath(lab, name);
        psi.Environment["LAB_IN"] = stdinFile ?? "/dev/null";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {name}");
        File.WriteAllText(PidPath(lab, name), p.Id.ToString());
        return p.Id;
    }

    public static string LogPath(LabLayout lab, string name) => Path.Combine(lab.LogDir, name + ".log");

    public static string PidPath(LabLayout lab, string name) => Path.Combine(lab.PidDir, name + ".pid");

    public static int? Pid(LabLayout lab, string name) =>
        File.Exists(PidPath(lab, name)) && int.TryParse(File.ReadAllText(PidPath(lab, name)).Trim(), out int pid) ? pid : null;

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ");

    /// <summary>Ends a process by its PID: SIGTERM, then SIGKILL if it lingers.</summary>
    public static void Stop(LabLayout lab, string name, TimeSpan grace)
    {
        if (Pid(lab, name) is not int pid) return;
        if (IsAlive(pid))
        {
            Signal(pid, "TERM");
            var until = DateTime.UtcNow + grace;
            while (IsAlive(pid) && DateTime.UtcNow < until) Thread.Sleep(100);
            if (IsAlive(pid)) Signal(pid, "KILL");
        }
        File.Delete(PidPath(lab, name));
    }

    public static void Signal(int pid, string signal)
    {
        using var p = Process.Start(new ProcessStartInfo("kill", ["-s", signal, pid.ToString()]) { UseShellExecute = false });
        p?.WaitForExit();
    }

    public static string Tail(LabLayout lab, string name, int lines = 20)
    {
        var path = LogPath(lab, name);
        return File.Exists(path) ? string.Join('\n', File.ReadAllLines(path).TakeLast(lines)) : "(no log)";
    }
}
