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
    public static int Start(LabLayout lab, string name, string ns, string exe, IEnumerable<string> args, string? stdinFile = null,
        IReadOnlyDictionary<string, string>? environment = null)
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
        // Only the lab's own supervisor may be told: an inherited socket (the lab run from a systemd unit) is not ours.
        psi.Environment.Remove(Linux.SystemdNotify.Variable);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {name}");
        File.WriteAllText(PidPath(lab, name), p.Id.ToString());
        return p.Id;
    }

    public static string LogPath(LabLayout lab, string name) => Path.Combine(lab.LogDir, name + ".log");

    public static string PidPath(LabLayout lab, string name) => Path.Combine(lab.PidDir, name + ".pid");

    public static int? Pid(LabLayout lab, string name) =>
        File.Exists(PidPath(lab, name)) && int.TryParse(File.ReadAllText(PidPath(lab, name)).Trim(), out int pid) ? pid : null;

    /// <summary>Is the process there and not a zombie? It may exit while we look: that reads as gone.</summary>
    public static bool IsAlive(int pid) => Stat(pid) is { } stat && !stat.Contains(") Z ", StringComparison.Ordinal);

    private static string? Stat(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Did <paramref name="pid"/> start before its PID file was written? A PID file left by a crash may name a
    /// number the kernel has since given to an unrelated process, which must not be signalled.
    /// </summary>
    internal static bool StartedBefore(int pid, DateTime pidFileWritten)
    {
        if (Stat(pid) is not { } stat || File.ReadAllLines("/proc/stat").FirstOrDefault(l => l.StartsWith("btime ", StringComparison.Ordinal)) is not { } btime)
            return false;
        // Field 22 of /proc/PID/stat is the start time in clock ticks (USER_HZ, 100 on Linux) since boot; the
        // fields are counted after the command name, which may itself hold spaces and parentheses.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        if (fields.Length < 20 || !long.TryParse(fields[19], out long ticks) || !long.TryParse(btime[6..], out long boot)) return false;
        var started = DateTimeOffset.FromUnixTimeSeconds(boot).AddSeconds(ticks / 100.0).UtcDateTime;
        return started <= pidFileWritten.AddSeconds(2);
    }

    /// <summary>Ends a process by its PID: SIGTERM, then SIGKILL if it lingers.</summary>
    public static void Stop(LabLayout lab, string name, TimeSpan grace)
    {
        if (Pid(lab, name) is not int pid) return;
        if (IsAlive(pid) && StartedBefore(pid, File.GetLastWriteTimeUtc(PidPath(lab, name))))
        {
            Signal(pid, "TERM");
            var until = DateTime.UtcNow + grace;
            while (IsAlive(pid) && DateTime.UtcNow < until) Thread.Sleep(100);
            if (IsAlive(pid)) Signal(pid, "KILL");
        }
        File.Delete(PidPath(lab, name));
    }

    /// <summary>Sends <paramref name="signal"/> (HUP, INT, KILL, TERM, STOP, CONT) to <paramref name="pid"/>; a process gone already is no error.</summary>
    public static void Signal(int pid, string signal)
    {
        // The kill(2) call itself: `kill` is procps's, which a minimal Debian has not.
        int number = signal switch
        {
            "HUP" => 1, "INT" => 2, "KILL" => 9, "TERM" => 15, "CONT" => 18, "STOP" => 19,
            _ => throw new ArgumentException($"unknown signal {signal}", nameof(signal)),
        };
        Linux.Libc.kill(pid, number);
    }

    public static string Tail(LabLayout lab, string name, int lines = 20)
    {
        var path = LogPath(lab, name);
        return File.Exists(path) ? string.Join('\n', File.ReadAllLines(path).TakeLast(lines)) : "(no log)";
    }
}
