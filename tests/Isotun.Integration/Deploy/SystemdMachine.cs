using System.Diagnostics;
using Isotun.Integration.Infrastructure;

namespace Isotun.Integration.Deploy;

/// <summary>
/// A throwaway machine run by a real systemd (PID 1 of namespaces of its own, see Scripts/systemd-machine.sh), with
/// the published isotun installed in it by `isotun install`, as an operator installs it. What it writes lands in
/// memory; it is killed, and its cgroups removed, at the end. systemd logs at debug level to the machine's journal,
/// so the notifications a unit sent can be read back.
/// </summary>
public sealed class SystemdMachine : IDisposable
{
    private static readonly string Script = Path.Combine(TestEnvironment.RepoRoot, "tests", "Isotun.Integration", "Deploy", "Scripts", "systemd-machine.sh");
    private readonly string _name = $"isotun-machine-{Environment.ProcessId}";
    private readonly Process? _process;
    private readonly Lock _installGate = new();
    private bool _installed;

    public SystemdMachine()
    {
        SkipReason = TestEnvironment.SkipReason ?? MissingPrerequisite();
        if (SkipReason is not null) return;
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])[Script, "start", _name]) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        try
        {
            // The script becomes unshare, whose one child becomes systemd.
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(20), () => SystemdPid() is not null), "systemd did not start");
            Pid = SystemdPid()!.Value;
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(60), () => Exec("systemctl", "is-system-running").Stdout.Trim() is "running" or "degraded"),
                "systemd did not come up: " + Exec("systemctl", "is-system-running"));
            Must("ip", "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Why the machine cannot run here; null when it runs.</summary>
    public string? SkipReason { get; }

    /// <summary>systemd's PID, as the host sees it.</summary>
    public int Pid { get; }

    private static string? MissingPrerequisite()
    {
        if (!File.Exists("/lib/systemd/systemd")) return "systemd is not installed (apt-get install systemd)";
        if (Run.Exec("sh", ["-c", "command -v unshare && command -v nsenter"]).ExitCode != 0) return "unshare and nsenter are needed (apt-get install util-linux)";
        if (Run.Exec("stat", ["-f", "-c", "%T", "/sys/fs/cgroup/systemd"]).Stdout.Trim() != "cgroupfs")
            return "the systemd machine needs cgroup v1 with a name=systemd hierarchy at /sys/fs/cgroup/systemd (as on the CI machine)";
        return null;
    }

    /// <summary>The machine's systemd: the child of unshare (the script became unshare) that runs systemd.</summary>
    private int? SystemdPid()
    {
        if (_process is null) return null;
        try
        {
            foreach (var child in File.ReadAllText($"/proc/{_process.Id}/task/{_process.Id}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries))
                if (int.TryParse(child, out int pid) && File.ReadAllText($"/proc/{pid}/comm").Trim() == "systemd") return pid;
        }
        catch (IOException)
        {
        }
        return null;
    }

    /// <summary>Runs a command inside the machine (all its namespaces).</summary>
    public Run.Result Exec(params string[] args) => Run.Exec("nsenter", ["-t", Pid.ToString(), "-a", .. args], timeoutSeconds: 120);

    /// <summary>Runs a command inside the machine and fails the test when it fails.</summary>
    public string Must(params string[] args)
    {
        var r = Exec(args);
        Assert.True(r.ExitCode == 0, $"{string.Join(' ', args)}: {r}");
        return r.Stdout;
    }

    /// <summary>systemd's own log so far (debug level).</summary>
    public string Log => Must("journalctl", "_PID=1", "-o", "cat", "--no-pager");

    /// <summary>A unit's property, as `systemctl show` gives it.</summary>
    public string Show(string unit, string property) => Must("systemctl", "show", unit, "-p", property, "--value").Trim();

    /// <summary>The notifications (sd_notify) the manager received from <paramref name="unit"/>, in order, from its log.</summary>
    public List<string> Notifications(string unit)
    {
        string prefix = $"{unit}: Got notification message from PID ";
        return Log.Split('\n')
            .Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf('(') + 1)..].TrimEnd(')'))
            .ToList();
    }

    /// <summary>
    /// Installs the published build once, with `isotun install` (its default paths: /usr/local, /etc/isotun,
    /// /var/lib/isotun, /etc/systemd/system), then makes what the example configs name: a CA, the two server
    /// certificates and a user.
    /// </summary>
    public void Install(string published)
    {
        lock (_installGate)
        {
            if (_installed) return;
            Must("bash", Path.Combine(TestEnvironment.RepoRoot, "isotun"), "install", "--from", published);
            Must("sh", "-c", """
                set -e
                PATH=/usr/local/bin:$PATH
                isotun pki init --dir /etc/isotun/pki
                isotun pki server --dir /etc/isotun/pki --name vpn.example --ip 198.18.0.1
                isotun pki server --dir /etc/isotun/pki --name vpn.initech.example
                umask 077; echo 'a password for alice' > /tmp/alice.pw
                isotun user add --file /etc/isotun/acme.passwd --user alice --password-file /tmp/alice.pw
                """);
            _installed = true;
        }
    }

    public void Dispose()
    {
        if (_process is not null)
        {
            // The namespace's PID 1 first: everything in the machine goes with it (killing unshare alone would not).
            if ((Pid > 0 ? Pid : SystemdPid()) is int pid and > 0) Run.Exec("kill", ["-KILL", pid.ToString()]);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(30))) Run.Exec("kill", ["-KILL", _process.Id.ToString()]);
            _process.WaitForExit();
            _process.Dispose();
            Run.Exec("bash", [Script, "cleanup", _name]);
        }
    }
}
