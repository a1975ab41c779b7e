using System.Text.RegularExpressions;
using Isotun.Integration.Infrastructure;

namespace Isotun.Integration.Deploy;

/// <summary>
/// The Debian package as <c>deploy/deb/build.sh</c> makes it from the suite's publish: lintian finds no error or
/// warning, the files and their modes are where Debian policy wants them, and dpkg installs, removes and purges it in a
/// throw-away root, where the installed isotun runs. Nothing is installed on this machine.
/// </summary>
[Collection(PublishCollection.Name)]
public sealed partial class DebPackageTests(PublishFixture publish) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"isotun-deb-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [SkippableFact]
    public void Lintian_finds_no_error_or_warning_and_the_files_are_where_debian_policy_puts_them()
    {
        Skip.IfNot(OnPath("lintian"), "lintian is missing (Debian package lintian; .ci/install-deps installs it): the Debian package was not checked");
        var deb = Build();

        var lintian = Run.Exec("lintian", ["--fail-on", "error,warning", deb], timeoutSeconds: 300);
        Assert.True(lintian.ExitCode == 0 && !Regex.IsMatch(lintian.Stdout, "^[EW]: ", RegexOptions.Multiline), lintian.ToString());

        var control = Run.Exec("dpkg-deb", ["--field", deb]);
        Assert.True(control.ExitCode == 0, control.ToString());
        Assert.Matches(@"(?m)^Depends: .*\blibssl3\b", control.Stdout);
        Assert.Matches(@"(?m)^Depends: .*\biproute2\b", control.Stdout);
        Assert.Matches(@"(?m)^Depends: .*\bprocps\b", control.Stdout); // the gateway unit's reload runs /bin/kill
        Assert.DoesNotMatch("libicu", control.Stdout); // InvariantGlobalization
        var conffiles = Run.Exec("dpkg-deb", ["--info", deb, "conffiles"]);
        Assert.Equal("/etc/isotun/isotun.yaml\n/etc/isotun/gateway.yaml\n", conffiles.Stdout);

        var files = Contents(deb);
        Assert.All(files.Values, f => Assert.Equal("root/root", f.Owner));
        Assert.Equal("../lib/isotun/isotun", files["usr/bin/isotun"].LinkTarget);
        // The published build leaves the execute bit on every file; the package keeps it on the programs only.
        string[] programs = ["usr/lib/isotun/isotun", "usr/lib/isotun/createdump", "usr/lib/isotun/site-gateway.sh"];
        Assert.All(files.Where(f => f.Key.StartsWith("usr/lib/isotun/") && f.Value.Mode[0] == '-'),
            f => Assert.True(f.Value.Mode == (programs.Contains(f.Key) ? "-rwxr-xr-x" : "-rw-r--r--"), $"{f.Key}: {f.Value.Mode}"));
        foreach (var file in new[]
                 {
                     "etc/isotun/isotun.yaml", "etc/isotun/gateway.yaml", "lib/systemd/system/isotun-server.service",
                     "lib/systemd/system/isotun-gateway.service", "usr/share/doc/isotun/copyright",
                     "usr/share/doc/isotun/changelog.Debian.gz", "usr/share/man/man1/isotun.1.gz", "usr/share/lintian/overrides/isotun",
                 })
            Assert.True(files.TryGetValue(file, out var f) && f.Mode == "-rw-r--r--", $"{file}: {(f is null ? "missing" : f.Mode)}");
        // The state directory is the postinst's (0700), not a file of the package.
        Assert.DoesNotContain(files.Keys, k => k.StartsWith("var/"));

        // The program runs from the package's files, without the SDK.
        var root = Path.Combine(_dir, "x");
        var extract = Run.Exec("dpkg-deb", ["-x", deb, root]);
        Assert.True(extract.ExitCode == 0, extract.ToString());
        var version = Run.Exec("env", ["-i", "PATH=/usr/bin:/bin", Path.Combine(root, "usr", "lib", "isotun", "isotun"), "--version"]);
        Assert.True(version.ExitCode == 0, version.ToString());
        Assert.Contains($"_{version.Stdout.Trim().Split('+')[0]}-1_", Path.GetFileName(deb));
        var server = File.ReadAllText(Path.Combine(root, "lib", "systemd", "system", "isotun-server.service"));
        Assert.Contains("ExecStart=/usr/bin/isotun server --config /etc/isotun/isotun.yaml\n", server);
        Assert.Contains("state: /var/lib/isotun/isotun.db", File.ReadAllText(Path.Combine(root, "etc", "isotun", "isotun.yaml")));
    }

    [SkippableFact]
    public void Dpkg_installs_upgrades_removes_and_purges_it_in_a_throwaway_root()
    {
        Skip.IfNot(Environment.IsPrivilegedProcess, "not root: dpkg --root cannot install the Debian package as its files' owner");
        Skip.IfNot(OnPath("unshare"), "unshare is missing (Debian package util-linux): the Debian package was not installed");
        var deb = Build();
        var root = Path.Combine(_dir, "root");
        Directory.CreateDirectory(Path.Combine(root, "var", "lib", "dpkg", "updates"));
        Directory.CreateDirectory(Path.Combine(root, "var", "lib", "dpkg", "info"));
        File.WriteAllText(Path.Combine(root, "var", "lib", "dpkg", "status"), "");
        string Under(string path) => Path.Combine(root, path);

        Dpkg(root, "--install", deb);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Under("var/lib/isotun")));
        var version = Run.Exec("env", ["-i", "PATH=/usr/bin:/bin", Under("usr/bin/isotun"), "--version"]);
        Assert.True(version.ExitCode == 0, version.ToString());

        // The operator edits a config and makes a key and state; an upgrade (here: the same version again) keeps them.
        File.AppendAllText(Under("etc/isotun/isotun.yaml"), "# edited by the operator\n");
        Directory.CreateDirectory(Under("etc/isotun/pki"));
        File.WriteAllText(Under("etc/isotun/pki/ca.key"), "key");
        File.WriteAllText(Under("var/lib/isotun/isotun.db"), "state");
        Dpkg(root, "--install", deb);
        Assert.EndsWith("# edited by the operator\n", File.ReadAllText(Under("etc/isotun/isotun.yaml")));

        // Remove: the program and the units go; config and state stay.
        Dpkg(root, "--remove", "isotun");
        Assert.False(Directory.Exists(Under("usr/lib/isotun")) || File.Exists(Under("usr/bin/isotun")) || File.Exists(Under("lib/systemd/system/isotun-server.service")));
        Assert.EndsWith("# edited by the operator\n", File.ReadAllText(Under("etc/isotun/isotun.yaml")));
        Assert.True(File.Exists(Under("var/lib/isotun/isotun.db")));

        // Purge: the package's config files and the state go; what the operator made in /etc/isotun stays.
        Dpkg(root, "--purge", "isotun");
        Assert.False(File.Exists(Under("etc/isotun/isotun.yaml")) || File.Exists(Under("etc/isotun/gateway.yaml")) || Directory.Exists(Under("var/lib/isotun")));
        Assert.True(File.Exists(Under("etc/isotun/pki/ca.key")));
    }

    private string Build()
    {
        Skip.IfNot(OnPath("dpkg-deb"), "dpkg-deb is missing (Debian package dpkg): the Debian package was not built");
        publish.AssertPublished();
        var script = Path.Combine(TestEnvironment.RepoRoot, "deploy", "deb", "build.sh");
        var build = Run.Exec("bash", [script, "--from", publish.Dir, "--out", _dir, "--fast", "--maintainer", "Isotun tests <tests@isotun.example>"],
            timeoutSeconds: 300);
        Assert.True(build.ExitCode == 0, build.ToString());
        var deb = build.Stdout.Trim();
        Assert.Matches(@"/isotun_[0-9][^_]*-1_(amd64|arm64)\.deb$", deb);
        return deb;
    }

    /// <summary>
    /// dpkg on a throw-away root. The maintainer scripts run outside a chroot (the root has no shell) and touch only
    /// DPKG_ROOT; so that a mistake in them cannot reach this machine, they run in a mount namespace where /var/lib and
    /// /run (the state directory, systemd) are empty file systems. --force-depends: the root has no libc6.
    /// </summary>
    private static void Dpkg(string root, params string[] args)
    {
        var dpkg = Run.Exec("unshare", ["--mount", "--propagation", "private", "sh", "-ec",
            "mount -t tmpfs isotun-test /var/lib; mount -t tmpfs isotun-test /run; exec dpkg \"$@\"", "sh",
            $"--root={root}", "--force-script-chrootless", "--force-depends", .. args], timeoutSeconds: 300);
        Assert.True(dpkg.ExitCode == 0, $"dpkg {string.Join(' ', args)}\n{dpkg}");
    }

    private sealed record Entry(string Mode, string Owner, string? LinkTarget);

    /// <summary>`dpkg-deb --contents`: path (without ./) to mode, owner and link target.</summary>
    private static Dictionary<string, Entry> Contents(string deb)
    {
        var list = Run.Exec("dpkg-deb", ["--contents", deb]);
        Assert.True(list.ExitCode == 0, list.ToString());
        var files = new Dictionary<string, Entry>();
        foreach (Match m in ContentsLine().Matches(list.Stdout))
        {
            var link = m.Groups["target"];
            files[m.Groups["path"].Value.TrimEnd('/')] = new Entry(m.Groups["mode"].Value, m.Groups["owner"].Value, link.Success ? link.Value : null);
        }
        return files;
    }

    // drwxr-xr-x root/root         0 2025-01-01 00:00 ./etc/isotun/   and   lrwxrwxrwx ... ./usr/bin/isotun -> ../lib/isotun/isotun
    [GeneratedRegex(@"^(?<mode>\S+) (?<owner>\S+) +\d+ \S+ \S+ \./(?<path>.*?)(?: -> (?<target>.*))?$", RegexOptions.Multiline)]
    private static partial Regex ContentsLine();

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, tool)));
}
