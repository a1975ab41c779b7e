using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
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
        AssertNoLabUp();
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

    /// <summary>
    /// These tests run `isotun lab up` and `down` under the default names, as a user does: a lab a developer left up on
    /// this machine would be taken down by them, so they stop first and say so.
    /// </summary>
    private static void AssertNoLabUp() =>
        Assert.False(NetworkNamespace.Exists("isotun-lab-cli") || NetworkNamespace.Exists("isotun-lab-srv"),
            "a lab is up on this machine (`isotun lab status`); take it down first (`isotun lab down`): this test would take it down");

    /// <summary>Every file on the PATH (and in the usual directories) that would run one of <see cref="Hidden"/>.</summary>
    private static string[] HiddenPrograms()
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]).Distinct();
        return dirs.SelectMany(d => Hidden.Select(p => Path.Combine(d, p))).Where(File.Exists)
            .Select(f => Path.GetFullPath(f)).Distinct().ToArray();
    }

    /// <summary>
    /// `lab up` writes a CA and keys into its directory and `lab down` deletes it: a directory that holds something
    /// else is refused and left alone. Ctrl-C while the lab comes up takes down what it made: processes, namespaces.
    /// </summary>
    [SkippableFact]
    public void An_interrupted_lab_up_leaves_nothing_running_and_a_directory_of_other_files_is_left_alone()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var labLock = LabLock.Acquire("lab", TimeSpan.FromMinutes(15));
        AssertNoLabUp();
        var foreign = Path.Combine(Path.GetTempPath(), $"isotun-foreign-{Environment.ProcessId}");
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-interrupted-{Environment.ProcessId}");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "notes.txt"), "mine");
        try
        {
            var refused = Run.Exec(TestEnvironment.IsotunExe, ["lab", "up", "--dir", foreign]);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("is not empty and was not made by `isotun lab up`", refused.Stderr);
            Assert.False(NetworkNamespace.Exists("isotun-lab-cli"), "the lab built namespaces before refusing its directory");
            var down = Run.Exec(TestEnvironment.IsotunExe, ["lab", "down", "--dir", foreign]);
            Assert.Equal(0, down.ExitCode);
            Assert.Contains("left in place", down.Stdout);
            Assert.Equal("mine", File.ReadAllText(Path.Combine(foreign, "notes.txt")));

            // Interrupted (SIGINT, as Ctrl-C) as soon as its third process, the client, is started: it then waits for
            // the tunnel. The pids of its processes are kept aside before, as the clean-up removes their files.
            const string interrupt = """
                set -u
                "$ISOTUN" lab up --dir "$LAB_DIR" >"$LAB_DIR.out" 2>"$LAB_DIR.err" &
                up=$!
                i=0
                while [ ! -s "$LAB_DIR/pids/client.pid" ] && [ $i -lt 1200 ]; do sleep 0.01; i=$((i+1)); done
                for n in service server client; do printf '%s ' "$(cat "$LAB_DIR/pids/$n.pid" 2>/dev/null)"; done
                kill -INT $up
                wait $up
                echo "exit $?"
                """;
            var r = Run.Exec("env", [$"ISOTUN={TestEnvironment.IsotunExe}", $"LAB_DIR={dir}", "sh", "-c", interrupt], timeoutSeconds: 120);
            var layout = LabLayout.Default(dir);
            var output = File.ReadAllText(dir + ".out");
            var stderr = File.ReadAllText(dir + ".err");
            Assert.True(r.Stdout.TrimEnd().EndsWith("exit 1", StringComparison.Ordinal), $"{r}\n{output}\n{stderr}");
            var pids = r.Stdout.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Where(w => int.TryParse(w, out _)).Select(int.Parse).SkipLast(1).ToList();
            Assert.True(pids.Count == 3, r.Stdout);
            Assert.Contains("lab up interrupted; cleaning up", output);
            Assert.Contains("lab up interrupted; everything it made is removed", stderr);
            foreach (var pid in pids) Assert.False(LabProcess.IsAlive(pid), $"process {pid} of the interrupted lab still runs");
            foreach (var ns in layout.Namespaces) Assert.False(NetworkNamespace.Exists(ns), $"namespace {ns} left behind");
            Assert.True(File.Exists(Path.Combine(dir, "logs", "server.log")), "the logs were not kept");
        }
        finally
        {
            Run.Exec(TestEnvironment.IsotunExe, ["lab", "down", "--dir", dir]);
            Directory.Delete(foreign, recursive: true);
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            File.Delete(dir + ".out");
            File.Delete(dir + ".err");
        }
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
