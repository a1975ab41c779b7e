using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Security;

namespace Isotun.Integration.Tenants;

/// <summary>
/// Two tenants on one server, deliberately overlapping: both use pool 10.10.0.0/24, and each has a service
/// at the same address 198.18.30.2 behind its own uplink, answering with its tenant's name. Each tenant
/// has its own CA. Four client hosts: alice and carol (alpha, client-to-client off), bob and dave (beta,
/// client-to-client on, rate-limited). Underlay 198.18.12.0/22, 198.18.30.0/24 inside each tenant's world.
/// </summary>
public sealed class TenantsFixture : TopologyFixture
{
    public const string Alpha = "alpha", Beta = "beta";
    public const long BetaRate = 2_000_000;
    public static readonly IPAddress ServiceIp = IPAddress.Parse("198.18.30.2");
    public static readonly IPAddress Gateway6Alpha = IPAddress.Parse("fd00:a::1");

    public static readonly (string Ns, string User, string Tenant, int Net)[] Clients =
    [
        ("isotun-mt-alice", "alice", Alpha, 12),
        ("isotun-mt-carol", "carol", Alpha, 13),
        ("isotun-mt-bob", "bob", Beta, 14),
        ("isotun-mt-dave", "dave", Beta, 15),
    ];

    public const string ServerNs = "isotun-mt-srv";
    public const string SvcA = "isotun-mt-svca", SvcB = "isotun-mt-svcb", SvcC = "isotun-mt-svcc";
    public const string TenantNsA = "isotun-mt-t-alpha", TenantNsB = "isotun-mt-t-beta", TenantNsC = "isotun-mt-t-gamma";
    /// <summary>Gamma's uplink: an existing link in the server's namespace that the server moves into gamma's.</summary>
    public const string GammaLink = "mt-lk0";

    public string Pin { get; private set; } = "";
    public Dictionary<string, string> Passwords { get; } = new();

    public TenantsFixture()
        : base(new LabLayout("mt", 6, Path.Combine(Path.GetTempPath(), $"isotun-mt-{Environment.ProcessId}")), TestEnvironment.SkipReason) => Open();

    protected override IEnumerable<string> OwnNamespaces =>
        [ServerNs, SvcA, SvcB, SvcC, TenantNsA, TenantNsB, TenantNsC, .. Clients.Select(c => c.Ns)];

    protected override IEnumerable<string> OwnProcesses => ["alice", "carol", "bob", "dave", "server", "svca", "svcb"];

    protected override void Build()
    {
        Directory.CreateDirectory(Dir);
        foreach (var ns in new[] { ServerNs, SvcA, SvcB, SvcC }.Concat(Clients.Select(c => c.Ns)))
        {
            IpCommand.Run("netns", "add", ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
        }
        foreach (var (ns, _, _, net) in Clients)
        {
            IpCommand.Run("link", "add", $"mt{net}c", "netns", ns, "type", "veth", "peer", "name", $"mt{net}s", "netns", ServerNs);
            IpCommand.RunIn(ns, "addr", "add", $"198.18.{net}.2/24", "dev", $"mt{net}c");
            IpCommand.RunIn(ServerNs, "addr", "add", $"198.18.{net}.1/24", "dev", $"mt{net}s");
            IpCommand.RunIn(ns, "link", "set", $"mt{net}c", "up");
            IpCommand.RunIn(ServerNs, "link", "set", $"mt{net}s", "up");
        }

        // Gamma's network: a veth whose server-side end the server moves into gamma's namespace as its uplink.
        IpCommand.Run("link", "add", GammaLink, "netns", ServerNs, "type", "veth", "peer", "name", "mt-lk1", "netns", SvcC);
        IpCommand.RunIn(SvcC, "addr", "add", "198.18.31.2/24", "dev", "mt-lk1");
        IpCommand.RunIn(SvcC, "link", "set", "mt-lk1", "up");
        IpCommand.RunIn(SvcC, "route", "add", "10.10.0.0/24", "via", "198.18.31.1");

        var serverPki = new PkiDirectory(Path.Combine(Dir, "pki"));
        serverPki.InitCa();
        var ips = Clients.Select(c => IPAddress.Parse($"198.18.{c.Net}.1")).ToList();
        Pin = serverPki.IssueServer("server", ips, []).Pin;
        foreach (var tenant in new[] { Alpha, Beta })
        {
            var pki = new PkiDirectory(Path.Combine(Dir, $"{tenant}-pki"));
            pki.InitCa($"{tenant} CA");
            foreach (var (_, user, t, _) in Clients.Where(c => c.Tenant == tenant))
            {
                pki.IssueClient(tenant, user);
                var pw = $"{user}-{Guid.NewGuid():N}"[..20];
                Passwords[user] = pw;
                SecretFile.WriteAllText(Path.Combine(Dir, $"{user}.password"), pw + "\n", overwrite: true);
                PasswordFile.SetUser(Path.Combine(Dir, $"{tenant}.passwd"), user, PasswordHasher.Hash(pw, 10_000));
            }
        }
        // A CA no tenant trusts, and a certificate from alpha's CA that claims OU=beta.
        var foreign = new PkiDirectory(Path.Combine(Dir, "foreign-pki"));
        foreign.InitCa("Foreign CA");
        foreign.IssueClient(Beta, "mallory");
        new PkiDirectory(Path.Combine(Dir, $"{Alpha}-pki")).IssueClient(Beta, "eve");

        File.WriteAllText(Path.Combine(Dir, "server.yaml"), $"""
            listen: 0.0.0.0:443
            tls:
              certificate: pki/server.crt
              key: pki/server.key
            admin:
              listen: 127.0.0.1:9410
            limits:
              handshake-timeout: 5
              auth-timeout: 15
            tenants:
              - name: {Alpha}
                namespace: {TenantNsA}
                pool: 10.10.0.0/24
                pool6: fd00:a::/64
                routes: [198.18.30.0/24]
                password-file: {Alpha}.passwd
                client-ca: {Alpha}-pki/ca.crt
                client-to-client: false
                uplink:
                  veth:
                    peer-namespace: {SvcA}
                    name: up0
                    peer-name: mt-up-a
                    address: 198.18.30.1/24
                    peer-address: 198.18.30.2/24
              - name: {Beta}
                namespace: {TenantNsB}
                pool: 10.10.0.0/24
                routes: [198.18.30.0/24]
                password-file: {Beta}.passwd
                client-ca: {Beta}-pki/ca.crt
                client-to-client: true
                rate-limit: {BetaRate}
                uplink:
                  veth:
                    peer-namespace: {SvcB}
                    name: up0
                    peer-name: mt-up-b
                    address: 198.18.30.1/24
                    peer-address: 198.18.30.2/24
              - name: gamma
                namespace: {TenantNsC}
                pool: 10.10.0.0/24
                routes: [198.18.31.0/24]
                uplink:
                  link:
                    name: {GammaLink}
                    address: 198.18.31.1/24
                    gateway: 198.18.31.2
            """);

        LabProcess.Start(Files, "svca", SvcA, TestEnvironment.IsotunExe, ["lab", "serve", "--text", $"hello from tenant {Alpha}"]);
        LabProcess.Start(Files, "svcb", SvcB, TestEnvironment.IsotunExe, ["lab", "serve", "--text", $"hello from tenant {Beta}"]);
        StartServer();
        foreach (var c in Clients) StartClient(c.User);
        foreach (var c in Clients)
            if (!WaitReady(c.User, TimeSpan.FromSeconds(30)))
                throw new InvalidOperationException($"{c.User} did not connect:\n{LabProcess.Tail(Files, c.User)}\n{LabProcess.Tail(Files, "server")}");
    }

    protected override void Cleanup()
    {
        base.Cleanup();
        lock (_ready)
        {
            foreach (var ready in _ready.Values) ready.Dispose();
            _ready.Clear();
        }
    }

    // Where each client says READY=1 (as to systemd): its address, its routes and a connection up. An address on its
    // TUN alone comes before the routes, and a fetch then finds no route.
    private readonly Dictionary<string, NotifySocket> _ready = [];

    /// <summary>Whether <paramref name="user"/>'s client, started by <see cref="StartClient"/>, reported its tunnel ready in time.</summary>
    public bool WaitReady(string user, TimeSpan timeout)
    {
        NotifySocket ready;
        lock (_ready) ready = _ready[user];
        return Eventually.Until(timeout, () => ready.ReadyWithin(TimeSpan.FromMilliseconds(200)));
    }

    public void StartServer()
    {
        LabProcess.Start(Files, "server", ServerNs, TestEnvironment.IsotunExe, ["server", "--config", Path.Combine(Dir, "server.yaml")]);
        if (!Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ServerNs, 443)))
            throw new InvalidOperationException("server did not start:\n" + LabProcess.Tail(Files, "server"));
    }

    public static (string Ns, string User, string Tenant, int Net) ClientOf(string user) => Clients.Single(c => c.User == user);

    public Uri Url(string user, string? path = null) => new($"https://198.18.{ClientOf(user).Net}.1/{path ?? ClientOf(user).Tenant}");

    public void StartClient(string user)
    {
        NotifySocket ready;
        lock (_ready)
        {
            if (_ready.Remove(user, out var old)) old.Dispose();
            _ready[user] = ready = new NotifySocket(Path.Combine(Dir, $"{user}.notify"));
        }
        LabProcess.Start(Files, user, ClientOf(user).Ns, TestEnvironment.IsotunExe,
            ["connect", Url(user).ToString(), "--user", user, "--password-file", Path.Combine(Dir, $"{user}.password"), "--servercert", Pin, "--interface", "isotun0"],
            environment: new Dictionary<string, string> { [SystemdNotify.Variable] = ready.Path });
    }

    public static IPAddress? ClientAddress(string user, bool v6 = false)
    {
        var (code, output, _) = IpCommand.Exec("ip", ["-n", ClientOf(user).Ns, v6 ? "-6" : "-4", "-o", "addr", "show", "dev", "isotun0"], check: false);
        if (code != 0) return null;
        var parts = output.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = Array.IndexOf(parts, v6 ? "inet6" : "inet");
        return i >= 0 && IPAddress.TryParse(parts[i + 1].Split('/')[0], out var a) ? a : null;
    }
}

[CollectionDefinition(Name)]
public sealed class TenantsCollection : ICollectionFixture<TenantsFixture>
{
    public const string Name = "tenants";
}
