using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>
/// `isotun server` for stock openconnect clients: the same <see cref="DemoLab"/> as `isotun lab up` (tag "oc",
/// underlay 198.18.40.0/23, apart from the other suites), whose own client is stopped so that openconnect
/// owns the client namespace, and whose server is restarted with this suite's config: the lab's demo tenant
/// (with the service host behind it), plus a tenant "quick" with the smallest DPD (5 s) for the dead-peer tests.
/// </summary>
public sealed class IsotunServerLab : IDisposable
{
    public const string QuickTenant = "quick";
    public const string QuickPool = "10.10.1.0/24";
    public const int QuickDpd = 5;
    public static readonly IPAddress QuickGateway = IPAddress.Parse("10.10.1.1");

    public IsotunServerLab()
    {
        SkipReason = InteropEnvironment.SkipOpenconnect;
        if (SkipReason is not null) return;
        _lock = LabLock.Acquire("oc", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-oc-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout("oc", 20, dir), TestEnvironment.IsotunExe, Log.Add);
        try
        {
            if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run (the lock says no live run owns it)
            Lab.Up(TimeSpan.FromSeconds(60));
            LabProcess.Stop(Layout, "client", TimeSpan.FromSeconds(5));
            LabProcess.Stop(Layout, "server", TimeSpan.FromSeconds(5));
            File.WriteAllText(ConfigPath, ServerConfig());
            StartServer();
            var scripts = Path.Combine(dir, "scripts");
            TunScript = InteropEnvironment.InstallScript("tun-script.sh", scripts);
            PingScript = InteropEnvironment.InstallScript("vpnfd-ping.py", scripts);
        }
        catch
        {
            Lab.Down(keepFiles: true);
            _lock.Dispose();
            throw;
        }
    }

    public string QuickNamespace => $"isotun-{Layout.Tag}-t-{QuickTenant}";

    private readonly LabLock? _lock;

    public string? SkipReason { get; }
    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string ConfigPath => Path.Combine(Layout.Directory, "interop-server.yaml");
    public string TunScript { get; } = "";
    public string PingScript { get; } = "";
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string Password => File.ReadAllText(Layout.UserPasswordPath).Trim();
    public string CertificatePath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.crt");
    public string KeyPath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.key");
    public int ServerPid => LabProcess.Pid(Layout, "server") ?? throw new InvalidOperationException("server not running");
    public string ServerLog => File.ReadAllText(LabProcess.LogPath(Layout, "server"));

    public void StartServer()
    {
        LabProcess.Start(Layout, "server", Layout.ServerNs, TestEnvironment.IsotunExe, ["server", "--config", ConfigPath]);
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!DemoLab.Listening(Layout.ServerNs, 443))
        {
            if (DateTime.UtcNow > until || !LabProcess.IsAlive(ServerPid))
                throw new InvalidOperationException("isotun server did not start:\n" + LabProcess.Tail(Layout, "server"));
            Thread.Sleep(200);
        }
    }

    /// <summary>The lab's own server.yaml (tenant demo, in its namespace, with an uplink to the service host) plus tenant quick.</summary>
    private string ServerConfig()
    {
        var labConfig = File.ReadAllText(Layout.ConfigPath).TrimEnd();
        if (!labConfig.Contains("\ntenants:\n", StringComparison.Ordinal) || !labConfig.Contains("\n  - name: ", StringComparison.Ordinal))
            throw new InvalidOperationException("the lab's server.yaml no longer ends with its tenants list; update IsotunServerLab:\n" + labConfig);
        return labConfig + $"""

              # Added by the interop tests: the smallest DPD, for the dead-peer tests. No uplink: its gateway is enough.
              - name: {QuickTenant}
                namespace: {QuickNamespace}
                pool: {QuickPool}
                routes: [{QuickPool}]
                dns: [{QuickGateway}]
                mtu: 1400
                dpd: {QuickDpd}
                keepalive: 20
                password-file: users.passwd

            """;
    }

    /// <summary>Sum of a Prometheus series' samples whose labels contain <paramref name="labelFilter"/>.</summary>
    public double Metric(string name, string labelFilter)
    {
        var scrape = Run.InNs(Layout.ServerNs, "curl", "-s", "--max-time", "5", $"http://127.0.0.1:{LabLayout.AdminPort}/metrics").Stdout;
        double sum = 0;
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) || !line.Contains(labelFilter)) continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        return sum;
    }

    public void Dispose()
    {
        if (Lab is null) return;
        Lab.Down(keepFiles: false);
        // The server deletes its tenant namespaces when it stops; this one is not in the lab's list if it did not.
        if (NetworkNamespace.Exists(QuickNamespace)) IpCommand.TryRun("netns", "del", QuickNamespace);
        _lock?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class IsotunServerLabCollection : ICollectionFixture<IsotunServerLab>
{
    public const string Name = "interop: openconnect to isotun server";
}
