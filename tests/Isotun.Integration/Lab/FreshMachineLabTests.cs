using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Linux;

namespace Isotun.Integration.Lab;

/// <summary>
/// `sudo ./isotun lab up` as a new user meets it on a machine with only the .NET SDK and iproute2: `ping`, `curl` and
/// `python3` are made unusable (each bind-mounted over with /bin/false in a private mount namespace) and the README's
/// command is run as written, through the ./isotun wrapper. Also isotun's own ping, which the lab's checks use, and its
/// clear reasons when a path is broken.
/// </summary>
[Collection(FreshMachineCollection.Name)]
public sealed class FreshMachineLabTests
{
    private static readonly string[] Hidden = ["ping", "ping4", "ping6", "curl", "python3"];

    [SkippableFact]
    public void Lab_up_works_without_ping_curl_or_python3()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var labLock = LabLock.Acquire("lab", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-fresh-{Environment.ProcessId}");
        var hide = HiddenPrograms();
        // In a private mount namespace: the bind mounts, and the lab's own namespace mounts, stay in it, and
        // `lab down` runs in it too, so nothing is left behind whatever happens.
        const string script = """
            set -u
            for f in "$@"; do mount --bind /bin/false "$f" || { echo "cannot hide $f"; exit 97; }; done
            for f in "$@"; do cmp -s /bin/false "$f" || { echo "$f is still there"; exit 98; }; done
            ./isotun lab up --dir "$LAB_DIR"
            rc=$?
            ./isotun lab down --dir "$LAB_DIR" >/dev/null 2>&1
            exit $rc
            """;
        var r = Run.Exec("env", [$"LAB_DIR={dir}", "unshare", "--mount", "--propagation", "private", "--wd", TestEnvironment.RepoRoot,
            "sh", "-c", script, "sh", .. hide], timeoutSeconds: 540);
        try
        {
            Assert.True(r.ExitCode == 0, $"lab up failed with {string.Join(", ", hide)} hidden:\n{r}");
            var output = r.Stdout;
            foreach (var check in new[] { "client → server tunnel gateway", "client → service through the tunnel", "service → client through the tunnel", "client → server over IPv6 in the tunnel" })
                Assert.Contains(output.Split('\n'), l => l.Contains($"ping {check}") && l.Contains("3 packets transmitted, 3 received"));
            Assert.Contains("through the tunnel: \"hello from tenant demo\"", output);
            Assert.Contains("waiting for the client to report the tunnel ready", output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        Assert.False(NetworkNamespace.Exists("isotun-lab-cli"), "lab down left the client namespace");
    }

    [SkippableFact]
    public void A_missing_program_is_named_with_the_package_that_provides_it_before_anything_is_made()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        // A PATH with every program the lab needs but ss (iproute2) and setsid (util-linux).
        var bin = Path.Combine(Path.GetTempPath(), $"isotun-path-{Environment.ProcessId}");
        Directory.CreateDirectory(bin);
        try
        {
            foreach (var program in new[] { "ip", "nsenter" })
                File.CreateSymbolicLink(Path.Combine(bin, program), Run.Exec("sh", ["-c", $"command -v {program}"]).Stdout.Trim());
            var r = Run.Exec("env", [$"PATH={bin}", TestEnvironment.IsotunExe, "lab", "up", "--dir", Path.Combine(bin, "lab")]);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("isotun lab: missing: `ss` (Debian package iproute2), `setsid` (Debian package util-linux); install with: apt-get install iproute2 util-linux",
                r.Stderr.Trim());
            Assert.False(Directory.Exists(Path.Combine(bin, "lab")), "the lab wrote its files before refusing");
        }
        finally
        {
            Directory.Delete(bin, recursive: true);
        }
    }

    /// <summary>Every file on the PATH (and in the usual directories) that would run one of <see cref="Hidden"/>.</summary>
    private static string[] HiddenPrograms()
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]).Distinct();
        return dirs.SelectMany(d => Hidden.Select(p => Path.Combine(d, p))).Where(File.Exists)
            .Select(f => Path.GetFullPath(f)).Distinct().ToArray();
    }

    [SkippableFact]
    public void Isotuns_own_ping_answers_on_loopback_and_names_the_reason_when_there_is_no_route()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        const string ns = "isotun-ping-t";
        if (NetworkNamespace.Exists(ns)) IpCommand.TryRun("netns", "del", ns);
        IpCommand.Run("netns", "add", ns);
        try
        {
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
            var v4 = Pinger.Ping(ns, IPAddress.Loopback, 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2));
            Assert.True(v4 is { Transmitted: 2, Received: 2 }, v4.ToString());
            var v6 = Pinger.Ping(ns, IPAddress.IPv6Loopback, 2, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2));
            Assert.True(v6 is { Transmitted: 2, Received: 2 }, v6.ToString());

            // No route at all: the kernel's own words, not "no reply".
            var none = Pinger.Ping(ns, IPAddress.Parse("198.18.99.1"), 1, TimeSpan.Zero, TimeSpan.FromSeconds(1));
            Assert.False(none.Success);
            Assert.Contains("Network is unreachable", none.ToString());

            // A route into a link where no one answers: a silent loss reads as "no reply".
            IpCommand.RunIn(ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1");
            IpCommand.RunIn(ns, "addr", "add", "198.18.98.1/24", "dev", "v0");
            IpCommand.RunIn(ns, "link", "set", "v0", "up");
            IpCommand.RunIn(ns, "link", "set", "v1", "up");
            var lost = Pinger.Ping(ns, IPAddress.Parse("198.18.98.2"), 1, TimeSpan.Zero, TimeSpan.FromMilliseconds(300));
            Assert.Equal("1 packets transmitted, 0 received, no reply", lost.ToString());
        }
        finally
        {
            IpCommand.TryRun("netns", "del", ns);
        }
    }
}

/// <summary>The fresh-machine lab uses the default lab names; it runs alone, not beside another lab test's set-up.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FreshMachineCollection
{
    public const string Name = "fresh-machine";
}
