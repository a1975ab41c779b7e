using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Security;

namespace Isotun.Integration.Gateway;

/// <summary>
/// One edge gateway in front of three tenants' servers, all in namespaces made here (tag "gw", 198.18.20-24.0/24):
/// <code>
///   isotun-gw-cli 198.18.20.2 ──┐                         ┌── 198.18.21.2:443  acme    (own TLS: passthrough)
///                               ├─ isotun-gw-edge ─────────┼── 198.18.21.3:8443 globex  (own TLS: passthrough with PROXY v2, *.globex.example)
///   isotun-gw-bad 198.18.24.2 ──┘  .20.1 / .24.1 / .21.1   └── 198.18.21.4:8443 initech (PROXY v2: TLS ends at the gateway)
///                                                            isotun-gw-srv (three `isotun server` processes)
/// </code>
/// The client host and the attacker reach only the gateway; only the gateway reaches the servers.
/// </summary>
public sealed class GatewayLabFixture : TopologyFixture
{
    public const string Cli = "isotun-gw-cli";
    public const string Edge = "isotun-gw-edge";
    public const string Srv = "isotun-gw-srv";
    public const string Bad = "isotun-gw-bad";
    public static readonly string[] Namespaces = [Cli, Edge, Srv, Bad];

    public static readonly IPAddress EdgeIp = IPAddress.Parse("198.18.20.1");
    public static readonly IPAddress CliIp = IPAddress.Parse("198.18.20.2");
    public static readonly IPAddress EdgeBadSide = IPAddress.Parse("198.18.24.1");
    public static readonly IPAddress BadIp = IPAddress.Parse("198.18.24.2");
    public static readonly IPAddress EdgeSrvSide = IPAddress.Parse("198.18.21.1");
    public static readonly IPAddress Untrusted = IPAddress.Parse("198.18.21.9"); // a second edge address the server does not trust
    public static readonly IPAddress AcmeIp = IPAddress.Parse("198.18.21.2");
    public static readonly IPAddress GlobexIp = IPAddress.Parse("198.18.21.3");
    public static readonly IPAddress InitechIp = IPAddress.Parse("198.18.21.4");
    public const int ProxyPort = 8443;
    public const int GatewayAdmin = 9420;
    public const int InitechAdmin = 9413;
    public const int GlobexAdmin = 9412;

    public GatewayLabFixture()
        : base(new LabLayout("gw", 10, Path.Combine(Path.GetTempPath(), $"isotun-gw-{Environment.ProcessId}")),
            TestEnvironment.SkipReason
            ?? (File.Exists("/usr/sbin/openconnect") || File.Exists("/usr/bin/openconnect") ? null : "openconnect is not installed (run .ci/install-deps)")
            ?? (File.Exists("/usr/bin/openssl") ? null : "openssl is not installed")) => Open();

    public LabLayout Layout => Files;

    protected override IEnumerable<string> OwnNamespaces => Namespaces;

    protected override IEnumerable<string> OwnProcesses => ["gateway", "server-acme", "server-globex", "server-initech"];
    public string Password { get; private set; } = "";
    public Dictionary<string, string> Pins { get; } = new();
    public string GatewayConfig => Path.Combine(Dir, "gateway.yaml");
    public string TunScript => Path.Combine(Dir, "scripts", "tun-script.sh");
    public IssuedCertificate AliceCert { get; private set; } = null!;
    /// <summary>OU=acme, issued by the same CA as <see cref="AliceCert"/>: valid for acme, never for initech.</summary>
    public IssuedCertificate AcmeCertFromTheSharedCa { get; private set; } = null!;

    protected override void Build()
    {
        Directory.CreateDirectory(Dir);
        foreach (var ns in Namespaces)
        {
            IpCommand.Run("netns", "add", ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
        }

        Veth("gw-c0", Cli, CliIp, "gw-e0", Edge, EdgeIp);
        Veth("gw-b0", Bad, BadIp, "gw-e2", Edge, EdgeBadSide);
        Veth("gw-e1", Edge, EdgeSrvSide, "gw-s0", Srv, AcmeIp);
        IpCommand.RunIn(Srv, "addr", "add", $"{GlobexIp}/24", "dev", "gw-s0");
        IpCommand.RunIn(Srv, "addr", "add", $"{InitechIp}/24", "dev", "gw-s0");
        IpCommand.RunIn(Edge, "addr", "add", $"{Untrusted}/24", "dev", "gw-e1");

        Password = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(9));
        var hash = PasswordHasher.Hash(Password);
        // The gateway holds initech's public certificate and key; acme and globex keep theirs on their own servers.
        // One CA issues the client certificates of every tenant (the default `isotun pki` layout): the gateway's
        // initech route trusts it, and so does initech's server, which must still refuse another tenant's user.
        var edgePki = new PkiDirectory(Path.Combine(Dir, "edge-pki"));
        edgePki.InitCa("Edge CA");
        var initechCert = edgePki.IssueServer("vpn.initech.example", [], []);
        Pins["initech-edge"] = initechCert.Pin;
        AliceCert = edgePki.IssueClient("initech", "alice");
        AcmeCertFromTheSharedCa = edgePki.IssueClient("acme", "mallory");

        WriteServer("acme", AcmeIp, "10.31.0.0/24", 9411, hash, proxy: null);
        WriteServer("globex", GlobexIp, "10.32.0.0/24", GlobexAdmin, hash, proxy: "true");
        WriteServer("initech", InitechIp, "10.33.0.0/24", InitechAdmin, hash, proxy: "false", clientCa: edgePki.CaCertificatePath);
        File.WriteAllText(GatewayConfig, GatewayYaml(initechCert, edgePki.CaCertificatePath, perIpConnections: 20));
        InteropEnvironment.InstallScript("tun-script.sh", Path.GetDirectoryName(TunScript)!);

        foreach (var t in new[] { "acme", "globex", "initech" })
            LabProcess.Start(Layout, "server-" + t, Srv, TestEnvironment.IsotunExe, ["server", "--config", Path.Combine(Dir, t, "server.yaml")]);
        LabProcess.Start(Layout, "gateway", Edge, TestEnvironment.IsotunExe, ["gateway", "--config", GatewayConfig]);
        // The three servers share their ports on different addresses, so each is waited for at its own address, on
        // the listener it opens last.
        WaitListening(Srv, new IPEndPoint(AcmeIp, 443), "server-acme");
        WaitListening(Srv, new IPEndPoint(InitechIp, ProxyPort), "server-initech");
        WaitListening(Srv, new IPEndPoint(GlobexIp, ProxyPort), "server-globex");
        WaitListening(Edge, new IPEndPoint(IPAddress.Any, 443), "gateway");
    }

    public string GatewayYaml(IssuedCertificate initech, string initechCa, int perIpConnections) => $"""
        # Written by the gateway integration tests. One config, hybrid: two tenants passed through, one terminated.
        listen: 0.0.0.0:443
        admin:
          listen: 127.0.0.1:{GatewayAdmin}
        routes:
          - sni: vpn.acme.example
            passthrough:
              backend: {AcmeIp}:443
          - sni: "*.globex.example"
            name: globex
            passthrough:
              backend: {GlobexIp}:{ProxyPort}
              proxy-protocol: true
          - sni: vpn.initech.example
            name: initech
            terminate:
              certificate: {initech.CertificatePath}
              key: {initech.KeyPath}
              client-ca: {initechCa}
              backend: {InitechIp}:{ProxyPort}
              proxy-protocol: true
        no-sni: reject
        non-tls: reject
        limits:
          preread-timeout: 2
          handshake-timeout: 5
          per-ip-connections: {perIpConnections}
          per-ip-rate: 40
          per-ip-burst: 60
          ban-after: 50
          failure-window: 30
          ban-time: 60
        """;

    /// <param name="proxy">null: no PROXY listener; "false": plaintext after the header (terminating route); "true": TLS after it (passthrough).</param>
    private void WriteServer(string tenant, IPAddress ip, string pool, int admin, string hash, string? proxy, string? clientCa = null)
    {
        var dir = Path.Combine(Dir, tenant);
        Directory.CreateDirectory(dir);
        var pki = new PkiDirectory(Path.Combine(dir, "pki"));
        pki.InitCa($"{tenant} CA");
        var cert = pki.IssueServer($"vpn.{tenant}.example", [ip], []);
        Pins[tenant] = cert.Pin;
        PasswordFile.SetUser(Path.Combine(dir, "users.passwd"), "alice", hash);
        var gateway = pool[..pool.LastIndexOf('.')] + ".1";
        File.WriteAllText(Path.Combine(dir, "server.yaml"), $"""
            listen: {ip}:443
            tls:
              certificate: {cert.CertificatePath}
              key: {cert.KeyPath}
            admin:
              listen: 127.0.0.1:{admin}
            state: isotun.db
            cookie:
              key-file: cookie.key
            {(proxy is null ? "" : $"proxy:\n  listen: {ip}:{ProxyPort}\n  trusted-gateways: [{EdgeSrvSide}/32]\n  tls: {proxy}\n")}
            tenants:
              - name: {tenant}
                pool: {pool}
                namespace: host
                device: gw-{tenant}
                server-names: [vpn.{tenant}.example]
                password-file: users.passwd
                client-ca: {clientCa ?? "null"}
            """);
        _ = gateway;
    }

    private static void Veth(string a, string nsA, IPAddress ipA, string b, string nsB, IPAddress ipB)
    {
        IpCommand.Run("link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB);
        IpCommand.RunIn(nsA, "addr", "add", $"{ipA}/24", "dev", a);
        IpCommand.RunIn(nsB, "addr", "add", $"{ipB}/24", "dev", b);
        IpCommand.RunIn(nsA, "link", "set", a, "up");
        IpCommand.RunIn(nsB, "link", "set", b, "up");
    }

    private void WaitListening(string ns, IPEndPoint at, string process)
    {
        bool Exited() => LabProcess.Pid(Layout, process) is int pid && !LabProcess.IsAlive(pid);
        if (Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ns, at), hopeless: Exited)) return;
        if (Exited()) throw new InvalidOperationException($"{process} exited:\n{LabProcess.Tail(Layout, process)}");
        throw new TimeoutException($"{process} not listening on {at}:\n{LabProcess.Tail(Layout, process)}");
    }

    /// <summary>Sum of a Prometheus series' samples whose labels contain <paramref name="labelFilter"/>.</summary>
    public static double Metric(string ns, int port, string name, string labelFilter = "")
    {
        var text = Run.InNs(ns, "curl", "-s", "--max-time", "5", $"http://127.0.0.1:{port}/metrics").Stdout;
        double sum = 0;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal) || !line.Contains(labelFilter)) continue;
            if (line.Length > name.Length && line[name.Length] is not ('{' or ' ')) continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }

        return sum;
    }
}

[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayLabFixture>
{
    public const string Name = "gateway";
}
