using System.Diagnostics;

namespace Isotun.Linux;

/// <summary>
/// Addresses, links, routes and namespaces are configured with iproute2's `ip`: the control plane is rare
/// and `ip` gives operators the exact same commands to read back.
/// </summary>
public static class IpCommand
{
    public static string Run(params string[] args) => Exec("ip", args, check: true).Output;

    public static bool TryRun(params string[] args) => Exec("ip", args, check: false).ExitCode == 0;

    /// <summary>Runs `ip` inside namespace <paramref name="ns"/> (`ip -n NS ...`).</summary>
    public static string RunIn(string? ns, params string[] args) =>
        ns is null ? Run(args) : Run(["-n", ns, .. args]);

    public static (int ExitCode, string Output, string Error) Exec(string file, IReadOnlyList<string> args, bool check, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        // Plain blocking reads on threads of their own: an async read of a pipe completes on a socket epoll thread,
        // and waiting for it there (with inline completions, see IoThreads) would never end.
        string output = "", error = "";
        var readers = new[]
        {
            new Thread(() => output = p.StandardOutput.ReadToEnd()) { IsBackground = true, Name = "exec-stdout" },
            new Thread(() => error = p.StandardError.ReadToEnd()) { IsBackground = true, Name = "exec-stderr" },
        };
        foreach (var r in readers) r.Start();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(30)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new TimeoutException($"{file} {string.Join(' ', args)}: timed out");
        }
        p.WaitForExit();
        foreach (var r in readers) r.Join();
        error = error.Trim();
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit {p.ExitCode}: {error}");
        return (p.ExitCode, output, error);
    }
}
