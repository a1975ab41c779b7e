using System.Diagnostics;
using System.Text;
using Isotun.Lab;

namespace Isotun.Integration.Interop;

/// <summary>
/// A long-running program started by a test (openconnect, `isotun connect`) inside a namespace, with its
/// output collected as it comes. `ip netns exec` (and setpriv) exec the program, so <see cref="Pid"/> is
/// the program itself: signals go to it, by PID. Disposing kills it (SIGKILL) if it still runs.
/// </summary>
public sealed class BackgroundProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly string _what;

    private BackgroundProcess(Process process, string what)
    {
        _process = process;
        _what = what;
    }

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>stdout and stderr interleaved, as far as read.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>`ip netns exec NS [prefix...] FILE ARGS`, with <paramref name="stdin"/> written and closed.</summary>
    public static BackgroundProcess StartInNs(string ns, string file, IEnumerable<string> args, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null, IEnumerable<string>? prefix = null)
    {
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])["netns", "exec", ns, .. prefix ?? [], file, .. args]) psi.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        var bp = new BackgroundProcess(p, Path.GetFileName(file));
        p.OutputDataReceived += (_, e) => bp.Append(e.Data);
        p.ErrorDataReceived += (_, e) => bp.Append(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        return bp;
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.Append(line).Append('\n');
    }

    public void Signal(string signal) => LabProcess.Signal(Pid, signal);

    /// <summary>Waits until the output contains <paramref name="text"/> (true), or the process exits or time runs out (false).</summary>
    public bool WaitForOutput(string text, TimeSpan timeout) => WaitFor(() => Output.Contains(text, StringComparison.Ordinal), timeout);

    /// <summary>How many times <paramref name="text"/> occurs in the output so far.</summary>
    public int Count(string text)
    {
        var all = Output;
        int n = 0;
        for (int i = all.IndexOf(text, StringComparison.Ordinal); i >= 0; i = all.IndexOf(text, i + text.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    public bool WaitFor(Func<bool> condition, TimeSpan timeout) =>
        Eventually.Until(timeout, condition, TimeSpan.FromMilliseconds(100), () => _process.HasExited);

    /// <summary>Waits for the process to end; true if it did.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit(); // drains the output readers
        return true;
    }

    public override string ToString() => $"{_what} (pid {_process.Id}{(_process.HasExited ? $", exit {_process.ExitCode}" : "")}):\n{Output}";

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                // SIGKILL also ends a process stopped with SIGSTOP.
                Signal("KILL");
                _process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
