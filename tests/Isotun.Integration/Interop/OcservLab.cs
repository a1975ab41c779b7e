using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>
/// A stock Debian ocserv for `isotun connect`: the namespaces, PKI, user and service of a <see cref="DemoLab"/>
/// (tag "ocs", underlay 198.18.42.0/23), whose isotun server and client are stopped and replaced by ocserv
/// in the server namespace, run in the foreground (`-f`) and stopped by PID. ocserv keeps its tunnels in the
/// server namespace, so this fixture gives that namespace a veth into the service host and routes the pool.
/// Password users come from ocpasswd (group demo), certificate users from the lab CA (UID = user, OU = group).
/// </summary>
public sealed class OcservLab : IDisposable
{
    public OcservLab()
    {
        SkipReason = InteropEnvironment.SkipOcserv;
        if (SkipReason is not null) return;
        _lock = LabLock.Acquire("ocs", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-ocs-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout("ocs", 21, dir), TestEnvironment.IsotunExe, Log.Add);
        try
        {
            if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run (the lock says no live run owns it)
            Lab.Up(TimeSpan.FromSeconds(60));
            LabProcess.Stop(Layout, "client", TimeSpan.FromSeconds(5));
            LabProcess.Stop(Layout, "server", TimeSpan.FromSeconds(5));
            ConnectServiceHost();
            WriteOcservFiles();
            StartOcserv();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private readonly LabLock? _lock;

    public string? SkipReason { get; }
    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string OcservDir => Path.Combine(Layout.Directory, "ocserv");
    public string ConfigPath => Path.Combine(OcservDir, "ocserv.conf");
    public string Url => $"https://{Layout.ServerIp}/";
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string PasswordPath => Layout.UserPasswordPath;
    public string CertificatePath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.crt");
    public string KeyPath => Path.Combine(Layout.PkiDir, $"{LabLayout.Tenant}-{LabLayout.User}.key");
    /// <summary>ocserv's own end of every tunnel: the first address of ipv4-network.</summary>
    public IPAddress Gateway => Layout.TunnelGateway;
    public string OcservLog => File.Exists(LabProcess.LogPath(Layout, "ocserv")) ? File.ReadAllText(LabProcess.LogPath(Layout, "ocserv")) : "";

    // Made in the root namespace first, so named with the tag like the lab's own veths.
    private string ServerSide => $"{Layout.Tag}-s9";
    private string ServiceSide => $"{Layout.Tag}-v9";

    /// <summary>The isotun server's tenant uplink went away with it: a plain routed veth server ↔ service instead.</summary>
    private void ConnectServiceHost()
    {
        IpCommand.Run("link", "add", ServerSide, "netns", Layout.ServerNs, "type", "veth", "peer", "name", ServiceSide, "netns", Layout.ServiceNs);
        IpCommand.RunIn(Layout.ServerNs, "addr", "add", $"{Layout.ServerServiceIp}/24", "dev", ServerSide);
        IpCommand.RunIn(Layout.ServiceNs, "addr", "replace", $"{Layout.ServiceIp}/24", "dev", ServiceSide);
        IpCommand.RunIn(Layout.ServerNs, "link", "set", ServerSide, "up");
        IpCommand.RunIn(Layout.ServiceNs, "link", "set", ServiceSide, "up");
        IpCommand.RunIn(Layout.ServiceNs, "route", "replace", Layout.Pool, "via", Layout.ServerServiceIp.ToString());
        IpCommand.Exec("ip", ["netns", "exec", Layout.ServerNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check: true);
    }

    private void WriteOcservFiles()
    {
        Directory.CreateDirectory(OcservDir);
        // ocserv's workers run as nobody and reach sec-mod through a socket in this directory.
        File.SetUnixFileMode(OcservDir, (UnixFileMode)0b111_101_101);
        var password = File.ReadAllText(Layout.UserPasswordPath).Trim();
        var passwd = Path.Combine(OcservDir, "ocpasswd");
        var r = Run.Exec(InteropEnvironment.OcpasswdPath!, ["-c", passwd, "-g", LabLayout.Tenant, LabLayout.User], stdin: $"{password}\n{password}\n");
        if (r.ExitCode != 0) throw new InvalidOperationException("ocpasswd failed: " + r);

        // As the reference setup (docs/interop.md), without restrict-user-to-routes (it needs iptables) and
        // without udp-port (no DTLS: both clients then stay on TLS, which is what Isotun speaks).
        File.WriteAllText(ConfigPath, $"""
            # Written by the interop tests (OcservLab).
            auth = "plain[passwd={passwd}]"
            enable-auth = "certificate"
            listen-host = {Layout.ServerIp}
            tcp-port = 443
            run-as-user = nobody
            run-as-group = nogroup
            socket-file = {OcservDir}/ocserv.sock
            occtl-socket-file = {OcservDir}/occtl.sock
            use-occtl = true
            pid-file = {OcservDir}/ocserv.pid
            server-cert = {Layout.PkiDir}/server.crt
            server-key = {Layout.PkiDir}/server.key
            ca-cert = {Layout.PkiDir}/ca.crt
            cert-user-oid = 0.9.2342.19200300.100.1.1
            cert-group-oid = 2.5.4.11
            isolate-workers = true
            max-clients = 16
            max-same-clients = 8
            rate-limit-ms = 0
            max-ban-score = 0
            auth-timeout = 240
            keepalive = 300
            dpd = 60
            mobile-dpd = 300
            try-mtu-discovery = false
            cookie-timeout = 300
            rekey-method = new-tunnel
            device = vpns
            predictable-ips = true
            ipv4-network = {Layout.Pool}
            route = {Layout.ServiceNet}
            dns = {Layout.TunnelGateway}
            cisco-client-compat = true
            dtls-legacy = true
            select-group = {LabLayout.Tenant}
            auto-select-group = false
            """);
        var check = Run.Exec(InteropEnvironment.OcservPath!, ["-t", "-c", ConfigPath]);
        if (check.ExitCode != 0) throw new InvalidOperationException("ocserv -t refused the config: " + check);
    }

    private void StartOcserv()
    {
        LabProcess.Start(Layout, "ocserv", Layout.ServerNs, InteropEnvironment.OcservPath!, ["-f", "-d", "2", "-c", ConfigPath]);
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!DemoLab.Listening(Layout.ServerNs, 443))
        {
            if (DateTime.UtcNow > until || LabProcess.Pid(Layout, "ocserv") is not int pid || !LabProcess.IsAlive(pid))
                throw new InvalidOperationException("ocserv did not start:\n" + LabProcess.Tail(Layout, "ocserv"));
            Thread.Sleep(200);
        }
    }

    public void Dispose()
    {
        if (Lab is null) return;
        // ocserv's main process ends its workers and sec-mod on SIGTERM.
        LabProcess.Stop(Layout, "ocserv", TimeSpan.FromSeconds(10));
        Lab.Down(keepFiles: false);
        _lock?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class OcservLabCollection : ICollectionFixture<OcservLab>
{
    public const string Name = "interop: isotun connect to ocserv";
}
