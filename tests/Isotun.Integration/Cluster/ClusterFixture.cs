using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Security;

namespace Isotun.Integration.Cluster;

/// <summary>
/// Three server nodes of one cluster and a real etcd (Debian's etcd-server), all in isotun-cl-srv: node-1 listens on
/// 198.18.66.1:443, node-2 on :8443 and node-3 on :9443, each with its own state file and its own namespace for tenant
/// acme; etcd on 127.0.0.1:23790. Clients run in isotun-cl-cli (198.18.66.2). Users: alice, bob, carol, dave, erin, frank, gina, hank, ivan, judy, kate. An edge gateway on 198.18.66.1:4443 balances
/// over the three nodes.
/// </summary>
public sealed class ClusterFixture : TopologyFixture
{
    public const string ServerNs = "isotun-cl-srv", ClientNs = "isotun-cl-cli";
    /// <summary>A second client host (a stock openconnect's), on 198.18.67.0/24: its routes must not mix with the first's.</summary>
    public const string Client2Ns = "isotun-cl-cli2";
    /// <summary>The tenant's own network: a bridge shared by both nodes' uplinks, where a service host reaches the clients.</summary>
    public const string ServiceNs = "isotun-cl-svc";
    public static readonly IPAddress ServiceIp = IPAddress.Parse("198.18.68.2");
    public const string EtcdBinary = "/usr/bin/etcd", Etcdctl = "/usr/bin/etcdctl";
    public const int EtcdPort = 23790;
    public static readonly IPAddress ServerIp = IPAddress.Parse("198.18.66.1");
    public static readonly string[] Users = ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kate"];
    /// <summary>The edge gateway in front of both nodes (no SNI: the default route, balanced over the two).</summary>
    public const int GatewayPort = 4443, GatewayAdmin = 9420;
    public static readonly (string Name, int Port, int Admin)[] Nodes = [("node-1", 443, 9411), ("node-2", 8443, 9412), ("node-3", 9443, 9413)];

    public string Pin { get; private set; } = "";

    public ClusterFixture()
        : base(new LabLayout("cl", 33, Path.Combine(Path.GetTempPath(), $"isotun-cl-{Environment.ProcessId}")),
            TestEnvironment.SkipReason ?? (File.Exists(EtcdBinary) ? null : $"{EtcdBinary} is missing (Debian package etcd-server; .ci/install-deps installs it)")
            ?? (File.Exists(Etcdctl) ? null : $"{Etcdctl} is missing (Debian package etcd-client; .ci/install-deps installs it)")) => Open();

    protected override IEnumerable<string> OwnNamespaces => [ServerNs, ClientNs, Client2Ns, ServiceNs, .. Nodes.Select(n => TenantNs(n.Name))];

    protected override IEnumerable<string> OwnProcesses => ["etcd", "gateway", .. Nodes.Select(n => n.Name), .. Users.Select(u => "client-" + u)];

    public static string TenantNs(string node) => $"isotun-cl-{node}-acme";

    public IPAddress Client2Ip { get; private set; } = IPAddress.None;

    /// <summary>The gateway's own ranking of the nodes, to place the test's clients.</summary>
    private static readonly Isotun.Gateway.Routing.BackendPool Balance = new([.. Nodes.Select(n => new IPEndPoint(ServerIp, n.Port))]);

    private static string Uplink(int node) => $"cl{node + 1}u";

    public string ConfigOf(string node) => Path.Combine(Dir, node, "isotun.yaml");

    public string PasswordPath(string user) => Path.Combine(Dir, user + ".password");

    public Uri Url(string node) => new($"https://{ServerIp}:{(node == "gateway" ? GatewayPort : Nodes.Single(n => n.Name == node).Port)}/acme");

    protected override void Build()
    {
        Directory.CreateDirectory(Dir);
        foreach (var ns in new[] { ServerNs, ClientNs, Client2Ns, ServiceNs })
        {
            IpCommand.Run("netns", "add", ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
        }
        IpCommand.Run("link", "add", "cl66c", "netns", ClientNs, "type", "veth", "peer", "name", "cl66s", "netns", ServerNs);
        IpCommand.RunIn(ClientNs, "addr", "add", "198.18.66.2/24", "dev", "cl66c");
        IpCommand.RunIn(ServerNs, "addr", "add", "198.18.66.1/24", "dev", "cl66s");
        IpCommand.RunIn(ClientNs, "link", "set", "cl66c", "up");
        IpCommand.RunIn(ServerNs, "link", "set", "cl66s", "up");
        // The second client's address: one the gateway ranks the same node first for as the first client's, so that
        // one node's death concerns both.
        Client2Ip = Enumerable.Range(2, 200).Select(i => IPAddress.Parse($"198.18.67.{i}"))
            .First(ip => Balance.Order(ip)[0] == Balance.Order(IPAddress.Parse("198.18.66.2"))[0]);
        IpCommand.Run("link", "add", "cl67c", "netns", Client2Ns, "type", "veth", "peer", "name", "cl67s", "netns", ServerNs);
        IpCommand.RunIn(Client2Ns, "addr", "add", $"{Client2Ip}/24", "dev", "cl67c");
        IpCommand.RunIn(ServerNs, "addr", "add", "198.18.67.1/24", "dev", "cl67s");
        IpCommand.RunIn(Client2Ns, "link", "set", "cl67c", "up");
        IpCommand.RunIn(ServerNs, "link", "set", "cl67s", "up");
        IpCommand.RunIn(Client2Ns, "route", "add", "198.18.66.0/24", "via", "198.18.67.1");

        // The tenant's segment: a bridge in the service host's namespace, the pool on-link there (so the service host
        // asks by ARP where each client is), and one veth per node, whose node end each node moves into its tenant
        // namespace as its uplink, answering ARP for the clients attached to it.
        IpCommand.RunIn(ServiceNs, "link", "add", "br0", "type", "bridge");
        IpCommand.RunIn(ServiceNs, "addr", "add", $"{ServiceIp}/24", "dev", "br0");
        IpCommand.RunIn(ServiceNs, "link", "set", "br0", "up");
        IpCommand.RunIn(ServiceNs, "route", "add", "10.20.0.0/24", "dev", "br0");
        // IPv6 the same way: pool6 on-link on the segment, where the node serving a client answers neighbour
        // solicitations for it (proxy NDP).
        IpCommand.RunIn(ServiceNs, "-6", "addr", "add", $"{ServiceIp6}/64", "dev", "br0", "nodad");
        IpCommand.RunIn(ServiceNs, "-6", "route", "add", Pool6, "dev", "br0");
        for (int i = 0; i < Nodes.Length; i++)
        {
            IpCommand.Run("link", "add", Uplink(i), "netns", ServerNs, "type", "veth", "peer", "name", $"cl{i + 1}b", "netns", ServiceNs);
            IpCommand.RunIn(ServiceNs, "link", "set", $"cl{i + 1}b", "master", "br0", "up");
        }

        var pki = new PkiDirectory(Path.Combine(Dir, "pki"));
        pki.InitCa();
        Pin = pki.IssueServer("server", [ServerIp], []).Pin;
        foreach (var user in Users)
        {
            var pw = $"{user}-{Guid.NewGuid():N}"[..20];
            SecretFile.WriteAllText(PasswordPath(user), pw + "\n", overwrite: true);
            PasswordFile.SetUser(Path.Combine(Dir, "acme.passwd"), user, PasswordHasher.Hash(pw, 10_000));
        }

        // etcd as in production: https only, with client certificates, from a CA of its own.
        var etcdPki = new PkiDirectory(Path.Combine(Dir, "etcd-pki"));
        etcdPki.InitCa("cluster etcd CA");
        _etcdServer = etcdPki.IssueServer("127.0.0.1", [IPAddress.Loopback], []);
        var nodeClient = etcdPki.IssueClient("cluster", "nodes");
        _etcdCa = etcdPki.CaCertificatePath;
        StartEtcd();
        // And with authentication on, as docs/cluster.md sets it up: the nodes log in as a user whose role holds the
        // cluster's prefix only. (Without their token etcd would take the client certificate's name, which is no user.)
        var etcdPassword = Path.Combine(Dir, "etcd.password");
        SecretFile.WriteAllText(etcdPassword, $"etcd-{Guid.NewGuid():N}\n", overwrite: true);
        EnableEtcdAuth(nodeClient, File.ReadAllText(etcdPassword).Trim());
        foreach (var (node, port, admin) in Nodes)
        {
            int index = Array.FindIndex(Nodes, n => n.Name == node);
            Directory.CreateDirectory(Path.Combine(Dir, node));
            File.WriteAllText(ConfigOf(node), $"""
                listen: {ServerIp}:{port}
                tls:
                  certificate: ../pki/server.crt
                  key: ../pki/server.key
                admin:
                  listen: 127.0.0.1:{admin}
                state: isotun.db
                limits:
                  login-ban-after: 3
                cluster:
                  etcd: [https://127.0.0.1:{EtcdPort}]
                  node: {node}
                  tls:
                    ca: {_etcdCa}
                    certificate: {nodeClient.CertificatePath}
                    key: {nodeClient.KeyPath}
                  auth:
                    user: isotun
                    password-file: {etcdPassword}
                tenants:
                  - name: acme
                    namespace: {TenantNs(node)}
                    pool: 10.20.0.0/24
                    pool6: {Pool6}
                    routes: [198.18.68.0/24, {Segment6}]
                    password-file: ../acme.passwd
                    uplink:
                      link:
                        name: {Uplink(index)}
                        address: 198.18.68.{11 + index}/24
                        proxy-arp: true
                """);
            StartNode(node);
        }

        File.WriteAllText(Path.Combine(Dir, "gateway.yaml"), $"""
            listen: {ServerIp}:{GatewayPort}
            admin:
              listen: 127.0.0.1:{GatewayAdmin}
            default:
              passthrough:
                backends: [{string.Join(", ", Nodes.Select(n => $"{ServerIp}:{n.Port}"))}]
            no-sni: default
            """);
        LabProcess.Start(Files, "gateway", ServerNs, TestEnvironment.IsotunExe, ["gateway", "--config", Path.Combine(Dir, "gateway.yaml")]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ServerNs, GatewayPort)))
            throw new InvalidOperationException("the gateway did not start:\n" + LabProcess.Tail(Files, "gateway"));
    }

    private IssuedCertificate? _etcdServer;
    private string? _etcdCa;

    public void StartEtcd()
    {
        LabProcess.Start(Files, "etcd", ServerNs, EtcdBinary,
        [
            "--name", "isotun-cl", "--data-dir", Path.Combine(Dir, "etcd"),
            "--listen-client-urls", $"https://127.0.0.1:{EtcdPort}", "--advertise-client-urls", $"https://127.0.0.1:{EtcdPort}",
            "--cert-file", _etcdServer!.CertificatePath, "--key-file", _etcdServer.KeyPath, "--trusted-ca-file", _etcdCa!, "--client-cert-auth",
            "--listen-peer-urls", "http://127.0.0.1:23800", "--initial-advertise-peer-urls", "http://127.0.0.1:23800",
            "--initial-cluster", "isotun-cl=http://127.0.0.1:23800",
        ]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ServerNs, EtcdPort)))
            throw new InvalidOperationException("etcd did not start:\n" + LabProcess.Tail(Files, "etcd"));
    }

    /// <summary>etcdctl, in the server namespace, over TLS with the nodes' client certificate.</summary>
    private void RunEtcdctl(IssuedCertificate client, params string[] args)
    {
        var run = Run.InNs(ServerNs, [Etcdctl, "--endpoints", $"https://127.0.0.1:{EtcdPort}", "--cacert", _etcdCa!,
            "--cert", client.CertificatePath, "--key", client.KeyPath, .. args]);
        if (run.ExitCode != 0) throw new InvalidOperationException($"etcdctl {string.Join(' ', args.Where(a => !a.Contains(':')))} failed: {run.Stderr}");
    }

    private void EnableEtcdAuth(IssuedCertificate client, string password)
    {
        RunEtcdctl(client, "user", "add", "root:" + Guid.NewGuid().ToString("N"));
        RunEtcdctl(client, "role", "add", "isotun");
        RunEtcdctl(client, "role", "grant-permission", "isotun", "--prefix=true", "readwrite", "/isotun/");
        RunEtcdctl(client, "user", "add", "isotun:" + password);
        RunEtcdctl(client, "user", "grant-role", "isotun", "isotun");
        RunEtcdctl(client, "auth", "enable");
    }

    public void StartNode(string node)
    {
        int port = Nodes.Single(n => n.Name == node).Port;
        LabProcess.Start(Files, node, ServerNs, TestEnvironment.IsotunExe, ["server", "--config", ConfigOf(node)]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ServerNs, port)))
            throw new InvalidOperationException($"{node} did not start:\n" + LabProcess.Tail(Files, node));
        // The segment's IPv6 prefix, on-link from the tenant namespace: a link uplink carries one address (IPv4 here),
        // so the route the tenant's network would give is added by hand.
        IpCommand.RunIn(TenantNs(node), "-6", "route", "replace", Segment6, "dev", Uplink(Array.FindIndex(Nodes, n => n.Name == node)));
    }

    /// <summary>The tenant's IPv6 pool: on a cluster node a client's IPv6 address sits where its IPv4 one does in the IPv4 pool.</summary>
    public const string Pool6 = "fd00:20::/64";

    /// <summary>The tenant's service host on the segment, in IPv6, and the segment's prefix.</summary>
    public const string ServiceIp6 = "fd00:68::5";
    public const string Segment6 = "fd00:68::/64";

    /// <summary>The global IPv6 address of <paramref name="user"/>'s TUN, or null.</summary>
    public static IPAddress? TunnelAddress6(string user, string ns = ClientNs)
    {
        var r = Run.Exec("ip", ["-n", ns, "-6", "-o", "addr", "show", "dev", "cl-" + user, "scope", "global"]);
        var parts = r.ExitCode == 0 ? r.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
        int i = Array.IndexOf(parts, "inet6");
        return i >= 0 && i + 1 < parts.Length && IPAddress.TryParse(parts[i + 1].Split('/')[0], out var a) ? a : null;
    }

    /// <summary>`isotun connect` as <paramref name="user"/> to <paramref name="node"/> in the client namespace, TUN cl-&lt;user&gt;; a cookie instead of the password when given.</summary>
    public void StartClient(string user, string node, string? cookie = null)
    {
        string[] args = ["connect", Url(node).ToString(), "--servercert", Pin, "--interface", "cl-" + user, "--reconnect-timeout", node == "gateway" ? "90" : "0"];
        if (cookie is null)
        {
            LabProcess.Start(Files, "client-" + user, ClientNs, TestEnvironment.IsotunExe, [.. args, "--user", user, "--password-file", PasswordPath(user)]);
            return;
        }
        var file = Path.Combine(Dir, user + ".cookie");
        SecretFile.WriteAllText(file, cookie + "\n", overwrite: true);
        LabProcess.Start(Files, "client-" + user, ClientNs, TestEnvironment.IsotunExe, [.. args, "--cookie-on-stdin"], stdinFile: file);
    }

    public static IPAddress? TunnelAddress(string user, string ns = ClientNs) => Traffic.TunAddress(ns, "cl-" + user);
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
