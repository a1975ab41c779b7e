using System.Net;
using System.Text.Json;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;
using Xunit.Abstractions;

namespace Isotun.Integration.Cluster;

/// <summary>
/// Three nodes share their cookie key, addresses and revocations through a real etcd (over TLS, with client certificates): a cookie one node issued opens a tunnel on
/// the other, a user revoked on one node loses their session on the other and cannot log in there, a cookie kicked on
/// one node is refused by the other, and while etcd is down tunnels go on and a revocation waits, then arrives.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTests(ClusterFixture cl, ITestOutputHelper output)
{
    private static readonly IPAddress Gateway = IPAddress.Parse("10.20.0.1");

    private void SkipUnlessReady() => Skip.If(cl.SkipReason is not null, cl.SkipReason);

    [SkippableFact]
    public void A_cookie_one_node_issued_opens_a_tunnel_on_the_other()
    {
        SkipUnlessReady();
        var cookie = Login("bob", "node-1");
        cl.StartClient("bob", "node-2", cookie);
        try
        {
            AssertTunnelUp("bob");
            var sessions = Json(Isotun("node-2", "sessions", "--user", "bob", "--json"));
            Assert.Contains(sessions.EnumerateArray(), s => s.GetProperty("connected").GetBoolean());
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-bob", TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>The nodes seal TLS session tickets with the cluster's key (made by the first, kept in etcd): a ticket
    /// one node gave resumes the TLS session on another.</summary>
    [SkippableFact]
    public void A_tls_session_ticket_one_node_gave_resumes_on_another()
    {
        SkipUnlessReady();
        var session = Path.Combine(cl.Dir, "s_client-session.pem");
        string SClient(string node, string option) =>
            Run.SClientSession(ClusterFixture.ClientNs, $"{ClusterFixture.ServerIp}:{ClusterFixture.Nodes.Single(n => n.Name == node).Port}", option, session);
        var first = SClient("node-1", "-sess_out");
        Assert.True(first.Contains("New, TLSv1.3"), first);
        double before = NodeMetric("node-2", "isotun_tls_handshakes_total", "kind=\"resumed\"");
        var second = SClient("node-2", "-sess_in");
        Assert.True(second.Contains("Reused, TLSv1.3"), second);
        Assert.Equal(before + 1, NodeMetric("node-2", "isotun_tls_handshakes_total", "kind=\"resumed\""));
    }

    [SkippableFact]
    public void A_user_revoked_on_one_node_loses_the_session_on_the_other_and_cannot_log_in_anywhere_until_enabled()
    {
        SkipUnlessReady();
        cl.StartClient("alice", "node-2");
        try
        {
            AssertTunnelUp("alice");
            Isotun("node-1", "revoke", "--tenant", "acme", "--user", "alice");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => ClusterFixture.TunnelAddress("alice") is null),
                "alice's tunnel on node-2 stayed up after node-1 revoked her:\n" + LabProcess.Tail(cl.Files, "node-2"));
            Assert.Contains("user revoked on another node", ProcessLogs.Once(cl.Files, "node-2", "user revoked on another node"));
            foreach (var node in new[] { "node-1", "node-2" })
                Assert.NotEqual(0, TryLogin("alice", node).ExitCode);

            Isotun("node-2", "revoke", "--tenant", "acme", "--user", "alice", "--enable");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => TryLogin("alice", "node-1").ExitCode == 0), "alice could not log in on node-1 after node-2 enabled her");
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-alice", TimeSpan.FromSeconds(5));
        }
    }

    [SkippableFact]
    public void A_cookie_kicked_on_one_node_is_refused_by_the_other()
    {
        SkipUnlessReady();
        var cookie = Login("carol", "node-1");
        cl.StartClient("carol", "node-1", cookie);
        try
        {
            AssertTunnelUp("carol");
            var id = Json(Isotun("node-1", "sessions", "--user", "carol", "--json")).EnumerateArray().Single().GetProperty("id").GetString()!;
            Isotun("node-1", "kick", id);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => ClusterFixture.TunnelAddress("carol") is null), "carol's tunnel stayed up after the kick");
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-carol", TimeSpan.FromSeconds(5));
        }
        // The same cookie at the other node: refused there too (the revocation came through etcd).
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () =>
        {
            var r = Run.Exec("ip", ["netns", "exec", ClusterFixture.ClientNs, TestEnvironment.IsotunExe, "connect", cl.Url("node-2").ToString(), "--servercert", cl.Pin,
                "--interface", "cl-carol2", "--reconnect-timeout", "0", "--cookie-on-stdin"], stdin: cookie + "\n", timeoutSeconds: 30);
            return r.ExitCode != 0 && r.Stderr.Contains("rejected", StringComparison.OrdinalIgnoreCase);
        }), "node-2 accepted a cookie node-1 kicked");
    }

    [SkippableFact]
    public void While_etcd_is_down_tunnels_go_on_and_a_revocation_waits_then_reaches_the_other_node()
    {
        SkipUnlessReady();
        cl.StartClient("dave", "node-2");
        try
        {
            AssertTunnelUp("dave");
            LabProcess.Stop(cl.Files, "etcd", TimeSpan.FromSeconds(10));
            try
            {
                Assert.True(Eventually.Until(TimeSpan.FromSeconds(20), () => !Cluster("node-1").GetProperty("connected").GetBoolean()), "node-1 did not notice etcd was down");
                Assert.Equal(0.0, Metric("node-1", "isotun_cluster_connected"));
                // The data plane does not need etcd.
                AssertPing("dave");
                // A revocation applies on the node where it was made, and waits for etcd (with the node's session
                // publications, which wait too).
                int before = Cluster("node-1").GetProperty("pendingWrites").GetInt32();
                Isotun("node-1", "revoke", "--tenant", "acme", "--user", "dave");
                Assert.True(Cluster("node-1").GetProperty("pendingWrites").GetInt32() > before, "the revocation is not among node-1's waiting writes");
                Assert.True(Metric("node-1", "isotun_cluster_pending_writes") >= 1, "the metric shows no waiting writes");
                Thread.Sleep(1000);
                Assert.NotNull(ClusterFixture.TunnelAddress("dave"));
            }
            finally
            {
                cl.StartEtcd();
            }
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => Cluster("node-1") is var c && c.GetProperty("connected").GetBoolean() && c.GetProperty("pendingWrites").GetInt32() == 0),
                "node-1 did not write its waiting change once etcd was back:\n" + LabProcess.Tail(cl.Files, "node-1"));
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => ClusterFixture.TunnelAddress("dave") is null),
                "dave's tunnel on node-2 stayed up after the waiting revocation reached etcd:\n" + LabProcess.Tail(cl.Files, "node-2"));
            Assert.Contains("cannot reach the store", ProcessLogs.Once(cl.Files, "node-1", "cannot reach the store"));
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-dave", TimeSpan.FromSeconds(5));
            Isotun("node-1", "revoke", "--tenant", "acme", "--user", "dave", "--enable");
        }
    }

    [SkippableFact]
    public void A_revocation_waiting_for_etcd_outlives_a_kill_of_its_node_and_reaches_the_others_once_both_are_back()
    {
        SkipUnlessReady();
        try
        {
            LabProcess.Stop(cl.Files, "etcd", TimeSpan.FromSeconds(10));
            try
            {
                Assert.True(Eventually.Until(TimeSpan.FromSeconds(20), () => !Cluster("node-1").GetProperty("connected").GetBoolean()), "node-1 did not notice etcd was down");
                Isotun("node-1", "revoke", "--tenant", "acme", "--user", "kate");
                // node-1 dies with the revocation unwritten (it waits on node-1's disk).
                int pid = LabProcess.Pid(cl.Files, "node-1")!.Value;
                LabProcess.Signal(pid, "KILL");
                Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => !LabProcess.IsAlive(pid)), "node-1 did not die");
            }
            finally
            {
                cl.StartEtcd();
            }
            // node-2 has not heard of it: kate still logs in there.
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => TryLogin("kate", "node-2").ExitCode == 0), "kate could not log in on node-2 before node-1 came back");
            cl.StartNode("node-1");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => Cluster("node-1") is var c && c.GetProperty("connected").GetBoolean() && c.GetProperty("pendingWrites").GetInt32() == 0),
                "node-1 did not write what it kept once it was back:\n" + LabProcess.Tail(cl.Files, "node-1"));
            Run.Result last = TryLogin("kate", "node-2");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => (last = TryLogin("kate", "node-2")).ExitCode != 0),
                "node-2 still lets kate log in after node-1 came back with her revocation: " + last + "\n" + LabProcess.Tail(cl.Files, "node-1"));
            Assert.NotEqual(0, TryLogin("kate", "node-1").ExitCode);
            Assert.Contains("had not reached the store", ProcessLogs.Once(cl.Files, "node-1", "had not reached the store"));
        }
        finally
        {
            if (LabProcess.Pid(cl.Files, "node-1") is not int pid || !LabProcess.IsAlive(pid)) cl.StartNode("node-1");
            Isotun("node-1", "revoke", "--tenant", "acme", "--user", "kate", "--enable");
        }
    }

    [SkippableFact]
    public void A_client_whose_node_dies_comes_back_on_another_node_with_the_same_address()
    {
        SkipUnlessReady();
        var cookie = Login("erin", "node-1");
        cl.StartClient("erin", "node-1", cookie);
        try
        {
            AssertTunnelUp("erin");
            var address = ClusterFixture.TunnelAddress("erin")!;
            // node-1 dies without a word: its lease runs out in etcd, and its address blocks with it.
            var killed = System.Diagnostics.Stopwatch.StartNew();
            LabProcess.Signal(LabProcess.Pid(cl.Files, "node-1")!.Value, "KILL");
            LabProcess.Stop(cl.Files, "client-erin", TimeSpan.FromSeconds(5));
            // The client comes back with its cookie on node-2 (until node-1's lease ends, node-2 answers 503: the
            // address is still node-1's), and gets the same address.
            IPAddress? again = null;
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(40), () =>
            {
                if (LabProcess.Pid(cl.Files, "client-erin") is not int pid || !LabProcess.IsAlive(pid)) cl.StartClient("erin", "node-2", cookie);
                return (again = ClusterFixture.TunnelAddress("erin")) is not null;
            }), "erin did not come back on node-2:\n" + LabProcess.Tail(cl.Files, "client-erin") + "\n" + LabProcess.Tail(cl.Files, "node-2"));
            output.WriteLine($"failover: node-1 killed, erin's tunnel up on node-2 after {killed.Elapsed.TotalSeconds:0.0} s (node lease TTL 10 s)");
            Assert.Equal(address, again);
            AssertPing("erin");
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-erin", TimeSpan.FromSeconds(5));
            if (LabProcess.Pid(cl.Files, "node-1") is not int pid || !LabProcess.IsAlive(pid)) cl.StartNode("node-1");
        }
    }

    [SkippableFact]
    public void Through_the_gateway_clients_whose_node_dies_come_back_on_the_other_node_with_their_addresses()
    {
        SkipUnlessReady();
        // Every node up in the gateway's eyes first (an earlier test may have restarted one): then both client hosts
        // go to the node their addresses rank first, the same one.
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => ServerMetrics.Sum(ServerMetrics.Scrape(ClusterFixture.ServerNs, ClusterFixture.GatewayAdmin),
            "isotun_gateway_backend_up") == ClusterFixture.Nodes.Length), "the gateway does not see every node up");
        // frank runs isotun connect, gina a stock openconnect; both reach the nodes through the gateway only.
        cl.StartClient("frank", "gateway");
        var scripts = Path.Combine(cl.Dir, "scripts");
        var tunScript = Interop.InteropEnvironment.InstallScript("tun-script.sh", scripts);
        using var gina = Interop.Openconnect.Start(ClusterFixture.Client2Ns,
            [.. Interop.Openconnect.Base(cl.Pin), "--user", "gina", "--passwd-on-stdin", "--script", tunScript, "--interface", "cl-gina",
             "--reconnect-timeout", "90", cl.Url("gateway").ToString()], stdin: File.ReadAllText(cl.PasswordPath("gina")));
        try
        {
            AssertTunnelUp("frank");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => ClusterFixture.TunnelAddress("gina", ClusterFixture.Client2Ns) is not null), "gina's openconnect did not come up:\n" + gina.Output);
            var (frank, ginaAddress) = (ClusterFixture.TunnelAddress("frank")!, ClusterFixture.TunnelAddress("gina", ClusterFixture.Client2Ns)!);
            var serving = ClusterFixture.Nodes.Single(n => ConnectedOn(n.Name, "frank"));
            Assert.True(ConnectedOn(serving.Name, "gina"),
                $"gina is not on {serving.Name} with frank: the gateway should rank it first for both client hosts; gina's sessions: "
                + string.Join("; ", ClusterFixture.Nodes.Select(n => n.Name + " " + Isotun(n.Name, "sessions", "--user", "gina", "--json").ReplaceLineEndings(" ")))
                + "\ngateway: " + LabProcess.Tail(cl.Files, "gateway", 15));
            // The tenant's service host reaches frank through the node that answers ARP (and NDP) for him; his IPv6
            // address is his IPv4 one's place in pool6.
            AssertPingFromService(frank);
            var frank6 = ClusterFixture.TunnelAddress6("frank");
            Assert.NotNull(frank6);
            Assert.Equal(IPAddress.Parse("fd00:20::" + frank.GetAddressBytes()[3].ToString("x")), frank6);
            AssertPingFromService(frank6);
            var others = ClusterFixture.Nodes.Where(n => n.Name != serving.Name).ToList();
            string? NodeOf(string user) => others.FirstOrDefault(n =>
                ConnectedOn(n.Name, user)).Name;

            var killed = System.Diagnostics.Stopwatch.StartNew();
            LabProcess.Signal(LabProcess.Pid(cl.Files, serving.Name)!.Value, "KILL");
            string other = "";
            foreach (var (user, address) in new[] { ("frank", frank), ("gina", ginaAddress) })
            {
                string? now = null;
                Assert.True(Eventually.Until(TimeSpan.FromSeconds(60), () => (now = NodeOf(user)) is not null),
                    $"{user} did not come back on another node:\n{(user == "gina" ? gina.Output : LabProcess.Tail(cl.Files, "client-frank"))}"
                    + string.Concat(others.Select(n => $"\n{n.Name}:\n{LabProcess.Tail(cl.Files, n.Name)}")));
                output.WriteLine($"failover through the gateway: {serving.Name} killed, {user} up on {now} after {killed.Elapsed.TotalSeconds:0.0} s");
                Assert.Equal(address, ClusterFixture.TunnelAddress(user, user == "gina" ? ClusterFixture.Client2Ns : ClusterFixture.ClientNs));
                var session = Json(Isotun(now!, "sessions", "--user", user, "--json")).EnumerateArray().Single(x => x.GetProperty("connected").GetBoolean());
                Assert.Equal(address.ToString(), session.GetProperty("address").GetString());
                if (user == "frank") other = now!;
            }
            AssertPing("frank");
            // The node frank is on now announced his address on the tenant's segment: the service reaches him again.
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => Pinger.Ping(ClusterFixture.ServiceNs, frank, 1, TimeSpan.Zero, TimeSpan.FromSeconds(1)).Success),
                $"the tenant's service does not reach frank ({frank}) on {other}:\n{Run.InNs(ClusterFixture.ServiceNs, "ip", "neigh").Stdout}\n{LabProcess.Tail(cl.Files, other)}");
            output.WriteLine($"the service reaches frank again {killed.Elapsed.TotalSeconds:0.0} s after the kill");
            // His IPv6 address came along, and the new node's neighbour advertisement moved the service to it.
            Assert.Equal(frank6, ClusterFixture.TunnelAddress6("frank"));
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => Pinger.Ping(ClusterFixture.ServiceNs, frank6, 1, TimeSpan.Zero, TimeSpan.FromSeconds(1)).Success),
                $"the tenant's service does not reach frank ({frank6}) on {other}:\n{Run.InNs(ClusterFixture.ServiceNs, "ip", "-6", "neigh").Stdout}\n{LabProcess.Tail(cl.Files, other)}");
            output.WriteLine($"the service reaches frank's IPv6 address again {killed.Elapsed.TotalSeconds:0.0} s after the kill");
            AssertPingFromService(ginaAddress);
            Assert.Equal(0.0, ServerMetrics.Sum(ServerMetrics.Scrape(ClusterFixture.ServerNs, ClusterFixture.GatewayAdmin),
                "isotun_gateway_backend_up", $"backend=\"{ClusterFixture.ServerIp}:{serving.Port}\""));
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-frank", TimeSpan.FromSeconds(5));
            foreach (var n in ClusterFixture.Nodes)
                if (LabProcess.Pid(cl.Files, n.Name) is not int pid || !LabProcess.IsAlive(pid)) cl.StartNode(n.Name);
        }
    }

    [SkippableFact]
    public void Any_node_lists_the_clusters_sessions_and_kicks_one_on_another_node()
    {
        SkipUnlessReady();
        cl.StartClient("hank", "node-2");
        try
        {
            AssertTunnelUp("hank");
            JsonElement hank = default;
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () =>
                Json(Isotun("node-1", "sessions", "--cluster", "--user", "hank", "--json")).EnumerateArray().FirstOrDefault(s => s.GetProperty("connected").GetBoolean()) is { ValueKind: JsonValueKind.Object } found
                && (hank = found).ValueKind == JsonValueKind.Object), "node-1 does not list hank's session on node-2");
            Assert.Equal("node-2", hank.GetProperty("node").GetString());
            Assert.Equal(ClusterFixture.TunnelAddress("hank")!.ToString(), hank.GetProperty("address").GetString());
            Assert.Contains("node-2", Isotun("node-1", "sessions", "--cluster", "--user", "hank"));

            Isotun("node-1", "kick", hank.GetProperty("id").GetString()!);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => ClusterFixture.TunnelAddress("hank") is null), "hank's tunnel on node-2 stayed up after node-1 kicked it");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () =>
                !Json(Isotun("node-1", "sessions", "--cluster", "--user", "hank", "--json")).EnumerateArray().Any()), "the kicked session is still listed");
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-hank", TimeSpan.FromSeconds(5));
        }
    }

    [SkippableFact]
    public void A_user_banned_on_one_node_for_failed_logins_is_refused_on_the_others_until_an_operator_unbans_it_on_any_and_failures_count_across_nodes()
    {
        SkipUnlessReady();
        var wrong = Path.Combine(cl.Dir, "ivan.wrong");
        global::Isotun.Security.SecretFile.WriteAllText(wrong, "not-the-password\n", overwrite: true);
        // Three failures on node-1 (the fixture bans a user after 3).
        for (int i = 0; i < 3; i++) Assert.NotEqual(0, TryLogin("ivan", "node-1", wrong).ExitCode);
        // node-2 never saw a failure of ivan's: the ban reaches it through etcd, and it refuses the right password.
        Run.Result last = TryLogin("ivan", "node-2");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => (last = TryLogin("ivan", "node-2")).ExitCode != 0 && last.ToString().Contains("too many failed logins")),
            "node-2 let the user banned on node-1 log in: " + last + "\n" + LabProcess.Tail(cl.Files, "node-2"));

        // An unban on a third node lifts it everywhere.
        Isotun("node-3", "unban", "--tenant", "acme", "--user", "ivan");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => TryLogin("ivan", "node-1").ExitCode == 0 && TryLogin("ivan", "node-2").ExitCode == 0),
            "the unban on node-3 did not reach node-1 and node-2: " + TryLogin("ivan", "node-1") + "\n" + TryLogin("ivan", "node-2"));

        // Failures spread over the nodes count together: one on each of the three makes the three that ban. (Each
        // node's count reaches the others through etcd in milliseconds; half a second apart leaves it room.)
        foreach (var node in new[] { "node-1", "node-2", "node-3" })
        {
            Assert.NotEqual(0, TryLogin("ivan", node, wrong).ExitCode);
            Thread.Sleep(500);
        }
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => (last = TryLogin("ivan", "node-1")).ExitCode != 0 && last.ToString().Contains("too many failed logins")),
            "three failures on three nodes did not ban the user: " + last + "\n" + LabProcess.Tail(cl.Files, "node-3"));
        Isotun("node-1", "unban", "--tenant", "acme", "--user", "ivan");
    }

    private static void AssertPingFromService(IPAddress client)
    {
        var r = Pinger.Ping(ClusterFixture.ServiceNs, client, 3, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2));
        Assert.True(r.Success, $"the tenant's service: ping {client} failed: {r}\n{Run.InNs(ClusterFixture.ServiceNs, "ip", "neigh").Stdout}"
            + string.Concat(ClusterFixture.Nodes.Select(n => $"\n{n.Name}: {Run.Exec("ip", ["-n", ClusterFixture.TenantNs(n.Name), "route"]).Stdout}{Run.Exec("ip", ["-n", ClusterFixture.TenantNs(n.Name), "neigh", "show", "proxy"]).Stdout}{Run.Exec("ip", ["-n", ClusterFixture.TenantNs(n.Name), "-o", "link"]).Stdout}"))
            + $"\nclient: {Run.Exec("ip", ["-n", ClusterFixture.ClientNs, "route"]).Stdout}");
    }

    [SkippableFact]
    public void A_node_sharing_tenants_runs_what_push_tenants_published_and_applies_the_next_publish_live()
    {
        SkipUnlessReady();
        // A fourth node, on the same etcd (TLS, client certificate, user) but with share-tenants: its file names no
        // tenant. Its tenants' namespaces and its process are this test's to clean up.
        const string Node = "node-s";
        const int Port = 10443, Admin = 9414;
        var dir = Path.Combine(cl.Dir, Node);
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, "isotun.yaml");
        File.WriteAllText(config, File.ReadAllText(cl.ConfigOf("node-1"))
            .Replace($"listen: {ClusterFixture.ServerIp}:443", $"listen: {ClusterFixture.ServerIp}:{Port}")
            .Replace("listen: 127.0.0.1:9411", $"listen: 127.0.0.1:{Admin}")
            .Replace("node: node-1", $"node: {Node}\n  share-tenants: true")
            .Split("\ntenants:")[0] + "\n");
        // etcd listens on the server namespace's loopback, as the nodes see it.
        Run.Result PushTenants(string file) => Run.Exec("ip", ["netns", "exec", ClusterFixture.ServerNs, TestEnvironment.IsotunExe, "cluster", "push-tenants", file, "--config", config]);
        string Tenant(string name, int pool) => $"  - name: {name}\n    namespace: isotun-cl-s-{name}\n    pool: 10.{pool}.0.0/24\n    password-file: ../acme.passwd\n";
        string Push(params string[] tenants)
        {
            var file = Path.Combine(dir, $"tenants-{Guid.NewGuid():N}.yaml");
            File.WriteAllText(file, "tenants:\n" + string.Concat(tenants));
            var r = PushTenants(file);
            Assert.True(r.ExitCode == 0, $"push-tenants failed: {r}");
            return System.Text.RegularExpressions.Regex.Match(r.Stdout, @"at revision (\d+)").Groups[1].Value;
        }
        JsonElement Status()
        {
            var r = Run.Exec(TestEnvironment.IsotunExe, ["status", "--json", "--config", config]);
            return r.ExitCode == 0 ? Json(r.Stdout) : default;
        }
        long Applied() => Status() is { ValueKind: JsonValueKind.Object } s && s.GetProperty("cluster").GetProperty("tenants") is { ValueKind: JsonValueKind.Object } t
            ? t.GetProperty("applied").GetInt64() : -1;
        try
        {
            // A file with a fault publishes nothing; a good one does, and the node starts with it.
            var bad = Path.Combine(dir, "bad.yaml");
            File.WriteAllText(bad, "tenants:\n" + Tenant("shared", 21).Replace("../acme.passwd", "../absent.passwd"));
            var refused = PushTenants(bad);
            Assert.Equal(2, refused.ExitCode);
            Assert.Contains("tenants[0].password-file", refused.Stderr);
            var first = long.Parse(Push(Tenant("shared", 21)));
            LabProcess.Start(cl.Files, Node, ClusterFixture.ServerNs, TestEnvironment.IsotunExe, ["server", "--config", config]);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(ClusterFixture.ServerNs, Port)), $"{Node} did not start:\n" + LabProcess.Tail(cl.Files, Node));
            Assert.Equal(first, Applied());

            // judy logs into the tenant that exists only by the publish.
            LabProcess.Start(cl.Files, "client-judy", ClusterFixture.ClientNs, TestEnvironment.IsotunExe,
                ["connect", $"https://{ClusterFixture.ServerIp}:{Port}/shared", "--servercert", cl.Pin, "--interface", "cl-judy", "--reconnect-timeout", "0",
                 "--user", "judy", "--password-file", cl.PasswordPath("judy")]);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => ClusterFixture.TunnelAddress("judy")?.ToString().StartsWith("10.21.0.", StringComparison.Ordinal) == true),
                "judy's tunnel into the published tenant did not come up:\n" + LabProcess.Tail(cl.Files, "client-judy") + LabProcess.Tail(cl.Files, Node));

            // A second tenant, published while the node runs: applied live, and judy's tunnel goes on.
            var second = long.Parse(Push(Tenant("shared", 21), Tenant("other", 22)));
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => Applied() == second), $"{Node} did not apply revision {second}:\n" + LabProcess.Tail(cl.Files, Node));
            Assert.Equal(2, Status().GetProperty("tenants").GetInt32());
            Assert.True(Pinger.Ping(ClusterFixture.ClientNs, IPAddress.Parse("10.21.0.1"), 3, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2)).Success,
                "judy's tunnel stopped carrying traffic after the publish");
            Assert.Contains($"cluster tenants of revision {second}: tenant other: added", ProcessLogs.Once(cl.Files, Node, $"cluster tenants of revision {second}: tenant other: added"));
        }
        finally
        {
            LabProcess.Stop(cl.Files, "client-judy", TimeSpan.FromSeconds(5));
            LabProcess.Stop(cl.Files, Node, TimeSpan.FromSeconds(10));
            foreach (var name in new[] { "shared", "other" }) IpCommand.TryRun("netns", "del", $"isotun-cl-s-{name}");
        }
    }

    /// <summary>Whether `isotun sessions` on <paramref name="node"/> shows a session of <paramref name="user"/> with a live tunnel.</summary>
    private bool ConnectedOn(string node, string user) =>
        Json(Isotun(node, "sessions", "--user", user, "--json")).EnumerateArray().Any(s => s.GetProperty("connected").GetBoolean());

    private JsonElement Cluster(string node) => Json(Isotun(node, "status", "--json")).GetProperty("cluster");

    private double Metric(string node, string name) => NodeMetric(node, name, $"node=\"{node}\"");

    /// <summary>A metric of <paramref name="node"/>'s own scrape.</summary>
    private static double NodeMetric(string node, string name, params string[] filters)
    {
        int port = ClusterFixture.Nodes.Single(n => n.Name == node).Admin;
        return ServerMetrics.Sum(ServerMetrics.Scrape(ClusterFixture.ServerNs, port), name, filters);
    }

    private void AssertTunnelUp(string user)
    {
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => ClusterFixture.TunnelAddress(user) is not null),
            $"{user}'s tunnel did not come up:\n{LabProcess.Tail(cl.Files, "client-" + user)}");
        AssertPing(user);
    }

    private static void AssertPing(string user)
    {
        var r = Pinger.Ping(ClusterFixture.ClientNs, Gateway, 3, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2));
        Assert.True(r.Success, $"{user}: ping {Gateway} failed: {r}");
    }

    /// <summary>`isotun connect --authenticate` from the client namespace: the cookie.</summary>
    private string Login(string user, string node)
    {
        var r = TryLogin(user, node);
        Assert.True(r.ExitCode == 0, $"{user} could not log in on {node}: {r}");
        return r.Cookie();
    }

    private Run.Result TryLogin(string user, string node, string? passwordFile = null) =>
        Run.Exec("ip", ["netns", "exec", ClusterFixture.ClientNs, TestEnvironment.IsotunExe, "connect", cl.Url(node).ToString(), "--servercert", cl.Pin,
            "--user", user, "--password-file", passwordFile ?? cl.PasswordPath(user), "--authenticate"], timeoutSeconds: 30);

    private string Isotun(string node, params string[] args)
    {
        var r = Run.Exec(TestEnvironment.IsotunExe, [.. args, "--config", cl.ConfigOf(node)]);
        Assert.True(r.ExitCode == 0, $"isotun {string.Join(' ', args)} on {node} failed: {r}");
        return r.Stdout;
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();
}
