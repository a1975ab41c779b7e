using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Docs;

/// <summary>
/// The README's "Using it" commands, read from README.md and run as written with the real `isotun` in an empty
/// directory, then `isotun server` in a server host (198.18.0.1, the address the README's `pki server` names) and a
/// stock openconnect in a client host, with the pin `pki pin` printed, by password and by certificate; then the
/// README's ping to the tenant's gateway through the tunnel.
/// </summary>
[Collection(ReadmeCollection.Name)]
public sealed class ReadmeQuickStartTests
{
    private const string Srv = "isotun-rd-srv", Cli = "isotun-rd-cli";
    private static readonly IPAddress ServerIp = IPAddress.Parse("198.18.0.1"), ClientIp = IPAddress.Parse("198.18.0.2");

    [SkippableFact]
    public void The_using_it_steps_serve_a_stock_openconnect_that_pins_the_printed_certificate()
    {
        Skip.If(InteropEnvironment.SkipOpenconnect is not null, InteropEnvironment.SkipOpenconnect);
        using var labLock = LabLock.Acquire("rd", TimeSpan.FromMinutes(15));
        // The README's tenants make these on the host: if they are there already, they are someone's server (or one
        // an interrupted run left), not this test's to delete.
        var taken = TenantNamespaces.Where(NetworkNamespace.Exists).ToList();
        Assert.True(taken.Count == 0, $"network namespace(s) {string.Join(", ", taken)} exist already: stop the server that uses them (or delete them with `ip netns del`) and run the test again");
        var dir = Directory.CreateTempSubdirectory("isotun-readme-").FullName;
        var layout = new LabLayout("rd", 30, dir);
        Cleanup();
        try
        {
            IpCommand.Run("netns", "add", Srv);
            IpCommand.Run("netns", "add", Cli);
            IpCommand.RunIn(Srv, "link", "set", "lo", "up");
            IpCommand.RunIn(Cli, "link", "set", "lo", "up");
            IpCommand.Run("link", "add", "rd-s0", "netns", Srv, "type", "veth", "peer", "name", "rd-c0", "netns", Cli);
            IpCommand.RunIn(Srv, "addr", "add", $"{ServerIp}/24", "dev", "rd-s0");
            IpCommand.RunIn(Cli, "addr", "add", $"{ClientIp}/24", "dev", "rd-c0");
            IpCommand.RunIn(Srv, "link", "set", "rd-s0", "up");
            IpCommand.RunIn(Cli, "link", "set", "rd-c0", "up");

            const string password = "correct horse battery staple";
            File.WriteAllText(Path.Combine(dir, "pw.txt"), password + "\n");
            string? pin = null;
            foreach (var step in DocSteps.Read(Path.Combine(TestEnvironment.RepoRoot, "README.md"), "## Using it"))
            {
                var (args, redirect) = DocSteps.SplitRedirect(step);
                // `user add` asks on the terminal; a test has none, so it gives the password as a file (the README names the flag).
                if (args[0] == "user" && args[1] == "add") args.AddRange(["--password-file", "pw.txt"]);
                var r = Run.Exec("sh", ["-c", "cd \"$0\" && exec \"$@\"", dir, TestEnvironment.IsotunExe, .. args]);
                Assert.True(r.ExitCode == 0, $"./isotun {string.Join(' ', step)}: {r}");
                if (redirect is not null) File.WriteAllText(Path.Combine(dir, redirect), r.Stdout);
                if (args is ["pki", "pin", ..]) pin = r.Stdout.Trim();
            }
            Assert.StartsWith("pin-sha256:", pin);

            // sudo ./isotun server --config isotun.yaml, in the server host.
            LabProcess.Start(layout, "server", Srv, TestEnvironment.IsotunExe, ["server", "--config", Path.Combine(dir, "isotun.yaml")]);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(Srv, 443)), LabProcess.Tail(layout, "server"));

            var script = InteropEnvironment.InstallScript("tun-script.sh", Path.Combine(dir, "scripts"));
            string[] common = ["--protocol=anyconnect", "--non-inter", "--servercert", pin!, "--resolve", $"vpn.example:{ServerIp}", "--script", script];

            // By password, as the README's first openconnect line; then the README's ping to the tenant's gateway.
            using (var oc = Openconnect.Start(Cli, [.. common, "--user", "alice", "--passwd-on-stdin", "--interface", "oc-rd", "https://vpn.example/acme"], stdin: password + "\n"))
            {
                Assert.True(oc.WaitFor(() => Traffic.TunAddress(Cli, "oc-rd") is not null, TimeSpan.FromSeconds(45)), "no tunnel by password: " + oc);
                var ping = Pinger.Ping(Cli, IPAddress.Parse("10.10.0.1"), 3, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2));
                Assert.True(ping.Success, ping.ToString());
                oc.Signal("TERM");
                Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(15)), oc.ToString());
            }
            // With alice's certificate, as the second.
            using (var oc = Openconnect.Start(Cli, [.. common, "-c", Path.Combine(dir, "pki/acme-alice.crt"), "-k", Path.Combine(dir, "pki/acme-alice.key"),
                       "--interface", "oc-rd", "https://vpn.example/acme"]))
            {
                Assert.True(oc.WaitFor(() => Traffic.TunAddress(Cli, "oc-rd") is not null, TimeSpan.FromSeconds(45)), "no tunnel by certificate: " + oc);
                oc.Signal("TERM");
                Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(15)), oc.ToString());
            }
        }
        finally
        {
            LabProcess.Stop(layout, "server", TimeSpan.FromSeconds(15));
            Cleanup(TenantNamespaces); // made by this test's server, which a clean stop removes; not left if it did not
            Directory.Delete(dir, recursive: true);
        }
    }

    private static readonly string[] TenantNamespaces = ["isotun-acme", "isotun-globex"];

    private static void Cleanup(params string[] also)
    {
        foreach (var ns in (string[])[Cli, Srv, .. also])
            if (NetworkNamespace.Exists(ns)) IpCommand.TryRun("netns", "del", ns);
    }
}

[CollectionDefinition(Name)]
public sealed class ReadmeCollection
{
    public const string Name = "readme quick start";
}
