using Isotun.Integration.Infrastructure;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>
/// Which stock OpenConnect programs this machine has (Debian packages from .ci/install-deps), their versions,
/// and the scripts the interop tests ship. Each Skip… property is null when those tests can run here, else
/// the reason they are skipped.
/// </summary>
public static class InteropEnvironment
{
    public static string? OpenconnectPath { get; } = Which("openconnect");
    public static string? OcservPath { get; } = Which("ocserv");
    public static string? OcpasswdPath { get; } = Which("ocpasswd");
    public static string? SetprivPath { get; } = Which("setpriv");

    /// <summary>The system python3 (not a per-user shim): the --script-tun helper runs as nobody.</summary>
    public static string? Python3Path { get; } = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);

    public static string? SkipOpenconnect { get; } = TestEnvironment.SkipReason
        ?? (OpenconnectPath is null ? "openconnect is not installed (apt-get install openconnect, or run .ci/install-deps)" : null);

    public static string? SkipScriptTun { get; } = SkipOpenconnect
        ?? (Python3Path is null ? "python3 is not installed (the --script-tun helper is a python3 script; run .ci/install-deps)" : null)
        ?? (SetprivPath is null ? "setpriv (util-linux) is not installed: needed to run openconnect without root" : null);

    public static string? SkipOcserv { get; } = TestEnvironment.SkipReason
        ?? (OcservPath is null || OcpasswdPath is null ? "ocserv is not installed (apt-get install ocserv, or run .ci/install-deps)" : null);

    /// <summary>The scripts shipped with these tests, in the source tree (no build step copies them).</summary>
    public static string ScriptsDir { get; } = Path.Combine(TestEnvironment.RepoRoot, "tests", "Isotun.Integration", "Interop", "Scripts");

    /// <summary>First line of `openconnect --version`, e.g. "OpenConnect version v9.01-3".</summary>
    public static string OpenconnectVersion => OpenconnectPath is null ? "absent" : FirstLine(OpenconnectPath, "--version");

    public static string OcservVersion => OcservPath is null ? "absent" : FirstLine(OcservPath, "--version");

    /// <summary>
    /// Copies a shipped script into <paramref name="dir"/> with mode 0755 so that any user can run it (the
    /// repository may not be readable by nobody), and returns its path.
    /// </summary>
    public static string InstallScript(string name, string dir)
    {
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        var target = Path.Combine(dir, name);
        File.Copy(Path.Combine(ScriptsDir, name), target, overwrite: true);
        File.SetUnixFileMode(target, (UnixFileMode)0b111_101_101);
        return target;
    }

    private static string? Which(string name)
    {
        foreach (var dir in new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin" })
        {
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    private static string FirstLine(string exe, string arg)
    {
        var (_, output, error) = IpCommand.Exec(exe, [arg], check: false);
        var text = (output + "\n" + error).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return text.FirstOrDefault() ?? "unknown";
    }
}
