using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Security;

namespace Isotun.Integration.Sites;

/// <summary>
/// Site-to-site in namespaces. Tenant acme has two sites: branch-a (192.168.10.0/24) behind gw-a, an `isotun connect
/// --site-gateway`, and branch-b (192.168.20.0/24) behind gw-b, a stock openconnect with the shipped
/// site-gateway.sh. Each site has a host (.2) answering with its name; alice is acme's road warrior. Tenant initech
/// has the very same subnets: its gateway gw-x carries a branch-a of its own (192.168.10.0/24, a host at the same
/// .2), and its branch-b is never connected. Underlay 198.18.60.0/22.
/// </summary>
public sealed class SitesFixture : TopologyFixture
{
    public const string Acme = "acme", Initech = "initech";
    public const string ServerNs = "isotun-s2s-srv";
    public const string TenantNsAcme = "isotun-s2s-t-acme", TenantNsInitech = "isotun-s2s-t-initech";
    public const string HostA = "isotun-s2s-hosta", HostB = "isotun-s2s-hostb", HostX = "isotun-s2s-hostx";
    public static readonly IPAddress SiteHostA = IPAddress.Parse("192.168.10.2"), SiteHostB = IPAddress.Parse("192.168.20.2");

    /// <summary>The tunnel clients: namespace, user, tenant, underlay /24, and the LAN behind it with its host.</summary>
    public static readonly (string Ns, string User, string Tenant, int Net, string? Lan, string? Host)[] Clients =
    [
        ("isotun-s2s-gwa", "gw-a", Acme, 60, "192.168.10", HostA),
        ("isotun-s2s-gwb", "gw-b", Acme, 61, "192.168.20", HostB),
        ("isotun-s2s-rw", "alice", Acme, 62, null, null),
        ("isotun-s2s-gwx", "gw-x", Initech, 63, "192.168.10", HostX),
    ];

    public string Pin { get; private set; } = "";
    public string ConfigPath => Path.Combine(Dir, "server.yaml");

    private BackgroundProcess? _openconnect;

    public SitesFixture()
        : base(new LabLayout("s2s", 30, Path.Combine(Path.GetTempPath(), $"isotun-s2s-{Environment.ProcessId}")), InteropEnvironment.SkipOpenconnect) => Open();

    protected override IEnumerable<string> OwnNamespaces => [ServerNs, TenantNsAcme, TenantNsInitech, HostA, HostB, HostX, .. Clients.Select(c => c.Ns)];

    protected override IEnumerable<string> OwnProcesses => ["gw-a", "alice", "gw-x", "server", HostA, HostB, HostX];

    public static (string Ns, string User, string Tenant, int Net, string? Lan, string? Host) ClientOf(string user) => Clients.Single(c => c.User == user);

    protected override void Build()
    {
        Directory.CreateDirectory(Dir);
        foreach (var ns in new[] { ServerNs, HostA, HostB, HostX }.Concat(Clients.Select(c => c.Ns)))
        {
            IpCommand.Run("netns", "add", ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
        }
        foreach (var (ns, _, _, net, lan, host) in Clients)
        {
            Link(ns, $"s2s{net}c", $"198.18.{net}.2/24", ServerNs, $"s2s{net}s", $"198.18.{net}.1/24");
            if (lan is null || host is null) continue;
            // The site's LAN: its gateway at .1, a host at .2 whose default route is the gateway.
            Link(ns, $"s2s{net}l", $"{lan}.1/24", host, "lan0", $"{lan}.2/24");
            IpCommand.RunIn(host, "route", "add", "default", "via", $"{lan}.1");
        }

        var pki = new PkiDirectory(Path.Combine(Dir, "pki"));
        pki.InitCa();
        Pin = pki.IssueServer("server", Clients.Select(c => IPAddress.Parse($"198.18.{c.Net}.1")).ToList(), []).Pin;
        foreach (var (_, user, tenant, _, _, _) in Clients)
        {
            var pw = $"{user}-{Guid.NewGuid():N}"[..20];
            SecretFile.WriteAllText(PasswordPath(user), pw + "\n", overwrite: true);
            PasswordFile.SetUser(Path.Combine(Dir, $"{tenant}.passwd"), user, PasswordHasher.Hash(pw, 10_000));
        }

        File.WriteAllText(ConfigPath, $"""
            listen: 0.0.0.0:443
            tls:
              certificate: pki/server.crt
              key: pki/server.key
            admin:
              listen: 127.0.0.1:{LabLayout.AdminPort}
            tenants:
              - name: {Acme}
                namespace: {TenantNsAcme}
                pool: 10.20.0.0/24
                routes: [198.18.64.0/24]
                password-file: {Acme}.passwd
                sites:
                  - name: branch-a
                    user: gw-a
                    subnets: [192.168.10.0/24]
                  - name: branch-b
                    user: gw-b
                    subnets: [192.168.20.0/24]
              - name: {Initech}
                namespace: {TenantNsInitech}
                pool: 10.20.0.0/24
                routes: [198.18.64.0/24]
                password-file: {Initech}.passwd
                sites:
                  - name: branch-a
                    user: gw-x
                    subnets: [192.168.10.0/24]
                  - name: branch-b
                    user: nobody-yet
                    subnets: [192.168.20.0/24]
            """);

        foreach (var (_, _, _, _, _, host) in Clients.Where(c => c.Host is not null))
            LabProcess.Start(Files, host!, host!, TestEnvironment.IsotunExe,
                ["lab", "serve", "--text", $"hello from {host}", "--port", LabLayout.ServicePort.ToString(), "--sink-port", LabLayout.SinkPort.ToString()]);
        StartServer();
        var ready = new Dictionary<string, NotifySocket>();
        try
        {
            foreach (var user in new[] { "gw-a", "alice", "gw-x" })
                StartIsotunClient(user, (ready[user] = new NotifySocket(Path.Combine(Dir, $"{user}.notify"))).Path);
            StartOpenconnect();
            foreach (var c in Clients)
                if (!Eventually.Until(TimeSpan.FromSeconds(30), () => IsUp(c, ready.GetValueOrDefault(c.User))))
                    throw new InvalidOperationException($"{c.User} did not connect:\n{ClientLog(c.User)}\n{LabProcess.Tail(Files, "server")}");
        }
        finally
        {
            foreach (var socket in ready.Values) socket.Dispose();
        }
    }

    /// <summary>
    /// An isotun client is up when it reports READY=1 (its TUN addressed, routed and taking packets); an address alone
    /// comes before that. openconnect's gateway is up when its script has run to the end: the address (added last by
    /// the TUN script) and then forwarding, which site-gateway.sh turns on after it.
    /// </summary>
    private static bool IsUp((string Ns, string User, string Tenant, int Net, string? Lan, string? Host) c, NotifySocket? ready) =>
        ready is not null
            ? ready.ReadyWithin(TimeSpan.FromMilliseconds(200))
            : Traffic.TunAddress(c.Ns, TunName(c.User)) is not null
              && Run.InNs(c.Ns, "cat", "/proc/sys/net/ipv4/ip_forward").Stdout.Trim() == "1";

    private static void Link(string ns, string dev, string address, string peerNs, string peerDev, string peerAddress)
    {
        IpCommand.Run("link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peerDev, "netns", peerNs);
        IpCommand.RunIn(ns, "addr", "add", address, "dev", dev);
        IpCommand.RunIn(peerNs, "addr", "add", peerAddress, "dev", peerDev);
        IpCommand.RunIn(ns, "link", "set", dev, "up");
        IpCommand.RunIn(peerNs, "link", "set", peerDev, "up");
    }

    public string PasswordPath(string user) => Path.Combine(Dir, $"{user}.password");

    public static string TunName(string user) => user == "gw-b" ? "oc-site" : "isotun0";

    public Uri Url(string user) => new($"https://198.18.{ClientOf(user).Net}.1/{ClientOf(user).Tenant}");

    public void StartServer()
    {
        LabProcess.Start(Files, "server", ServerNs, TestEnvironment.IsotunExe, ["server", "--config", ConfigPath]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ServerNs, 443)))
            throw new InvalidOperationException("server did not start:\n" + LabProcess.Tail(Files, "server"));
    }

    private void StartIsotunClient(string user, string notifySocket)
    {
        var c = ClientOf(user);
        string[] args = ["connect", Url(user).ToString(), "--user", user, "--password-file", PasswordPath(user), "--servercert", Pin, "--interface", TunName(user)];
        LabProcess.Start(Files, user, c.Ns, TestEnvironment.IsotunExe, c.Host is null ? args : [.. args, "--site-gateway"],
            environment: new Dictionary<string, string> { [SystemdNotify.Variable] = notifySocket });
    }

    /// <summary>gw-b: the stock openconnect with the shipped site-gateway.sh, over the test's TUN-only script.</summary>
    private void StartOpenconnect()
    {
        var scripts = Path.Combine(Dir, "scripts");
        var tunScript = InteropEnvironment.InstallScript("tun-script.sh", scripts);
        var siteScript = Path.Combine(scripts, "site-gateway.sh");
        File.Copy(Path.Combine(TestEnvironment.RepoRoot, "deploy", "openconnect", "site-gateway.sh"), siteScript, overwrite: true);
        File.SetUnixFileMode(siteScript, (UnixFileMode)0b111_101_101);
        _openconnect = Openconnect.Start(ClientOf("gw-b").Ns,
            [.. Openconnect.Base(Pin), "--user", "gw-b", "--passwd-on-stdin", "--script", siteScript, "--interface", TunName("gw-b"), Url("gw-b").ToString()],
            stdin: File.ReadAllText(PasswordPath("gw-b")), environment: new Dictionary<string, string> { ["SITE_GATEWAY_VPNC_SCRIPT"] = tunScript });
    }

    public string ClientLog(string user) => user == "gw-b" ? _openconnect?.Output ?? "" : LabProcess.Tail(Files, user);

    protected override void Cleanup()
    {
        _openconnect?.Dispose();
        base.Cleanup();
    }
}

[CollectionDefinition(Name)]
public sealed class SitesCollection : ICollectionFixture<SitesFixture>
{
    public const string Name = "sites";
}
