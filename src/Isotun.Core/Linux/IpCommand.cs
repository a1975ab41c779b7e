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

    /// <summary>
    /// The routes of the main table for exactly <paramref name="network"/> in namespace <paramref name="ns"/> (null:
    /// this one), read from `ip -j`; none when `ip` fails or gives what this does not read.
    /// </summary>
    public static IReadOnlyList<IpRoute> ExactRoutes(string? ns, string family, string network)
    {
        string[] args = ["-j", family, "route", "show", "exact", network];
        var (code, output, _) = Exec("ip", ns is null ? args : ["-n", ns, .. args], check: false);
        if (code != 0 || string.IsNullOrWhiteSpace(output)) return [];
        var routes = new List<IpRoute>();
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(output);
            foreach (var r in json.RootElement.EnumerateArray())
            {
                string? Field(string name) => r.TryGetProperty(name, out var v)
                    ? v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetRawText() : v.GetString()
                    : null;
                routes.Add(new IpRoute(Field("type") ?? "unicast", Field("dev"), Field("gateway"), Field("protocol"), Field("scope"), Field("prefsrc"), Field("metric")));
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            return [];
        }
        return routes;
    }

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
