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
public sealed class IsotunServerLab : DemoLabFixture
{
    public const string QuickTenant = "quick";
    public const string QuickPool = "10.10.1.0/24";
    public const int QuickDpd = 5;
    public static readonly IPAddress QuickGateway = IPAddress.Parse("10.10.1.1");

    /// <summary>A tenant whose pushed routes cover the server's own address: a client must keep its connection outside the tunnel.</summary>
    public const string WideTenant = "wide";
    public const string WidePool = "10.10.2.0/24";
    public static readonly IPAddress WideGateway = IPAddress.Parse("10.10.2.1");

    public IsotunServerLab() : base("oc", 20, TimeSpan.FromSeconds(60), InteropEnvironment.SkipOpenconnect)
    {
        if (Lab is null) return;
        try
        {
            LabProcess.Stop(Layout, "client", TimeSpan.FromSeconds(5));
            LabProcess.Stop(Layout, "server", TimeSpan.FromSeconds(5));
            File.WriteAllText(ConfigPath, ServerConfig());
            StartServer();
            var scripts = Path.Combine(Layout.Directory, "scripts");
            TunScript = InteropEnvironment.InstallScript("tun-script.sh", scripts);
            PingScript = InteropEnvironment.InstallScript("vpnfd-ping.py", scripts);
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    public string QuickNamespace => $"isotun-{Layout.Tag}-t-{QuickTenant}";
    public string WideNamespace => $"isotun-{Layout.Tag}-t-{WideTenant}";

    public string ConfigPath => Path.Combine(Layout.Directory, "interop-server.yaml");
    public string TunScript { get; } = "";
    public string PingScript { get; } = "";
    public string CertificatePath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.crt");
    public string KeyPath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.key");
    public int ServerPid => LabProcess.Pid(Layout, "server") ?? throw new InvalidOperationException("server not running");
    public string ServerLog => File.ReadAllText(LabProcess.LogPath(Layout, "server"));

    public void StartServer()
    {
        LabProcess.Start(Layout, "server", Layout.ServerNs, TestEnvironment.IsotunExe, ["server", "--config", ConfigPath]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(Layout.ServerNs, 443), hopeless: () => !LabProcess.IsAlive(ServerPid)))
            throw new InvalidOperationException("isotun server did not start:\n" + LabProcess.Tail(Layout, "server"));
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
              # Routes that take in the server's own address (and the same small DPD, so a tunnel that swallowed its
              # own connection would show within seconds).
              - name: {WideTenant}
                namespace: {WideNamespace}
                pool: {WidePool}
                routes: [{WidePool}, {Layout.ServerIp}/32]
                mtu: 1400
                dpd: {QuickDpd}
                keepalive: 20
                password-file: users.passwd

            """;
    }

    public override void Dispose()
    {
        if (Lab is null) return;
        try
        {
            Lab.Down(keepFiles: false);
            // The server deletes its tenant namespaces when it stops; this one is not in the lab's list if it did not.
            foreach (var ns in new[] { QuickNamespace, WideNamespace })
                if (NetworkNamespace.Exists(ns)) IpCommand.TryRun("netns", "del", ns);
        }
        finally
        {
            base.Dispose();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class IsotunServerLabCollection : ICollectionFixture<IsotunServerLab>
{
    public const string Name = "interop: openconnect to isotun server";
}
