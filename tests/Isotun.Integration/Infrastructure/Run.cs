using System.Diagnostics;

namespace Isotun.Integration.Infrastructure;

/// <summary>Runs a command to completion with a bounded time, capturing its output.</summary>
public static class Run
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";

        /// <summary>
        /// The cookie `isotun connect --authenticate` printed: its <c>COOKIE='…'</c> line, unquoted as a shell would
        /// (single quotes, and <c>'\''</c> for a quote inside).
        /// </summary>
        public string Cookie()
        {
            var line = Stdout.Split('\n').Single(l => l.StartsWith("COOKIE=", StringComparison.Ordinal))["COOKIE=".Length..].Trim();
            Assert.True(line.Length >= 2 && line[0] == '\'' && line[^1] == '\'', $"COOKIE is not quoted for a shell: {line}");
            return line[1..^1].Replace("'\\''", "'");
        }
    }

    public static Result Exec(string file, IEnumerable<string> args, string? stdin = null, int timeoutSeconds = 60)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return new Result(-1, o.Result, e.Result + $"\n(killed after {timeoutSeconds} s)");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, o.Result, e.Result);
    }

    /// <summary>`ip netns exec NS isotun ARGS`.</summary>
    public static Result Isotun(string ns, IEnumerable<string> args, string? stdin = null, int timeoutSeconds = 60) =>
        Exec("ip", ["netns", "exec", ns, TestEnvironment.IsotunExe, .. args], stdin, timeoutSeconds);

    public static Result InNs(string ns, params string[] args) => Exec("ip", ["netns", "exec", ns, .. args]);

    /// <summary>
    /// One TLS 1.3 connection of openssl s_client from <paramref name="ns"/> to <paramref name="endpoint"/>, which saves
    /// its session to (<c>-sess_out</c>) or brings it back from (<c>-sess_in</c>) <paramref name="session"/>; what it
    /// printed. Its input stays open a second, long enough for the tickets that follow a TLS 1.3 handshake.
    /// </summary>
    public static string SClientSession(string ns, string endpoint, string sessionOption, string session) =>
        InNs(ns, "sh", "-c", $"sleep 1 | openssl s_client -connect {endpoint} -tls1_3 {sessionOption} {session}").Stdout;
}
