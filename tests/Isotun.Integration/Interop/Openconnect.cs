using Isotun.Integration.Infrastructure;

namespace Isotun.Integration.Interop;

/// <summary>Runs the stock openconnect client (anyconnect protocol) the way the interop tests need it.</summary>
public static class Openconnect
{
    /// <summary>Options every run uses: the protocol, no prompts, and the server pinned by its key.</summary>
    public static string[] Base(string pin) => ["--protocol=anyconnect", "--non-inter", "--servercert", pin];

    /// <summary>openconnect in <paramref name="ns"/> as root, configuring its TUN with the shipped script.</summary>
    public static BackgroundProcess Start(string ns, IEnumerable<string> args, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null) =>
        BackgroundProcess.StartInNs(ns, InteropEnvironment.OpenconnectPath!, args, stdin, environment);

    /// <summary>openconnect in <paramref name="ns"/> as nobody (no capabilities), so no kernel TUN: --script-tun.</summary>
    public static BackgroundProcess StartAsNobody(string ns, IEnumerable<string> args, string? stdin, IReadOnlyDictionary<string, string> environment) =>
        BackgroundProcess.StartInNs(ns, InteropEnvironment.OpenconnectPath!, args, stdin, environment,
            prefix: [InteropEnvironment.SetprivPath!, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);

    /// <summary>`openconnect --authenticate`: logs in and prints COOKIE, HOST, CONNECT_URL, FINGERPRINT, RESOLVE.</summary>
    public static IReadOnlyDictionary<string, string> Authenticate(string ns, IEnumerable<string> args, string? stdin)
    {
        var r = Run.Exec("ip", ["netns", "exec", ns, InteropEnvironment.OpenconnectPath!, "--authenticate", .. args], stdin, timeoutSeconds: 60);
        Assert.True(r.ExitCode == 0, "openconnect --authenticate failed: " + r);
        return ParseShellAssignments(r.Stdout);
    }

    /// <summary>Lines of the form NAME='value' (single-quoted for the shell, ' written as '\'').</summary>
    public static IReadOnlyDictionary<string, string> ParseShellAssignments(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var value = line[(eq + 1)..];
            if (value.Length >= 2 && value[0] == '\'' && value[^1] == '\'') value = value[1..^1].Replace("'\\''", "'");
            values[line[..eq]] = value;
        }
        return values;
    }
}
