using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Sites;

/// <summary>
/// Two sites of one tenant reach each other through the server (one gateway is Isotun's client, the other a stock
/// openconnect), a road warrior reaches both, a tenant with the same subnets reaches neither, and a gateway that
/// sends from outside its site is dropped and counted.
/// </summary>
[Collection(SitesCollection.Name)]
public sealed class SiteToSiteTests(SitesFixture lab)
{
    private static readonly IPAddress HostA = SitesFixture.SiteHostA, HostB = SitesFixture.SiteHostB;

    private void SkipUnlessReady() => Skip.If(lab.SkipReason is not null, lab.SkipReason);

    [SkippableFact]
    public void Hosts_at_the_two_sites_ping_each_other_and_talk_tcp_both_ways()
    {
        SkipUnlessReady();
        AssertPing(SitesFixture.HostA, HostB);
        AssertPing(SitesFixture.HostB, HostA);
        // The answer names the host: site b reaches acme's 192.168.10.2, not initech's host at the same address.
        Assert.Equal($"hello from {SitesFixture.HostB}", Fetch(SitesFixture.HostA, HostB));
        Assert.Equal($"hello from {SitesFixture.HostA}", Fetch(SitesFixture.HostB, HostA));
    }

    [SkippableFact]
    public void A_road_warrior_of_the_tenant_reaches_both_sites()
    {
        SkipUnlessReady();
        var rw = SitesFixture.ClientOf("alice").Ns;
        AssertPing(rw, HostA);
        AssertPing(rw, HostB);
        Assert.Equal($"hello from {SitesFixture.HostA}", Fetch(rw, HostA));
        Assert.Equal($"hello from {SitesFixture.HostB}", Fetch(rw, HostB));
    }

    [SkippableFact]
    public void A_tenant_with_the_same_subnets_reaches_neither_of_the_others_sites()
    {
        SkipUnlessReady();
        // initech's gateway holds 192.168.10.0/24 too, and is given a route to its own (never connected) branch-b.
        Assert.Contains("192.168.20.0/24", Run.InNs(SitesFixture.ClientOf("gw-x").Ns, "ip", "-4", "route").Stdout);
        var ping = Pinger.Ping(SitesFixture.HostX, HostB, count: 3, interval: TimeSpan.FromMilliseconds(200), wait: TimeSpan.FromSeconds(1));
        Assert.False(ping.Success, $"initech's site reached acme's branch-b: {ping}");
        Assert.Null(TryFetch(SitesFixture.HostX, HostB));
        // Its own tunnel works: it reaches its tenant's gateway.
        AssertPing(SitesFixture.HostX, IPAddress.Parse("10.20.0.1"));
    }

    [SkippableFact]
    public void A_site_gateway_that_forwards_a_source_outside_its_site_has_it_dropped_and_counted()
    {
        SkipUnlessReady();
        // A host behind gw-a sends from an address of site b: gw-a forwards it (no NAT), the server drops it.
        var spoofed = IPAddress.Parse("192.168.20.99");
        Run.InNs(SitesFixture.HostA, "ip", "addr", "replace", $"{spoofed}/32", "dev", "lan0");
        double before = SpoofedDrops();
        NetworkNamespace.Run(SitesFixture.HostA, () =>
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(spoofed, 0));
            for (int i = 0; i < 5; i++) s.SendTo("spoofed"u8.ToArray(), new IPEndPoint(HostB, 9));
            return 0;
        });
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => SpoofedDrops() >= before + 5),
            $"the server did not count the spoofed packets (before {before}, now {SpoofedDrops()})");
        AssertPing(SitesFixture.HostA, HostB); // the gateway's real traffic goes on
    }

    [SkippableFact]
    public void Sites_show_with_their_session_and_bytes_in_the_admin_api_and_the_cli()
    {
        SkipUnlessReady();
        AssertPing(SitesFixture.HostA, HostB);
        var json = Isotun("sites", "--json");
        using var doc = JsonDocument.Parse(json);
        var acme = doc.RootElement.GetProperty(SitesFixture.Acme).EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        foreach (var name in new[] { "branch-a", "branch-b" })
        {
            Assert.Equal(JsonValueKind.String, acme[name].GetProperty("session").ValueKind);
            Assert.True(acme[name].GetProperty("rxBytes").GetInt64() > 0, $"{name} counted no bytes from its subnets: {json}");
            Assert.True(acme[name].GetProperty("txBytes").GetInt64() > 0, $"{name} counted no bytes to its subnets: {json}");
        }
        var initech = doc.RootElement.GetProperty(SitesFixture.Initech).EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal(JsonValueKind.Null, initech["branch-b"].GetProperty("session").ValueKind);

        // The session of gw-a carries branch-a, with its subnets, in the session details and the table.
        var sessions = Isotun("sessions", "--tenant", SitesFixture.Acme, "--user", "gw-a", "--json");
        using var s = JsonDocument.Parse(sessions);
        var site = s.RootElement.EnumerateArray().Single(x => x.GetProperty("connected").GetBoolean()).GetProperty("site");
        Assert.Equal("branch-a", site.GetProperty("name").GetString());
        Assert.Equal(["192.168.10.0/24"], site.GetProperty("subnets").EnumerateArray().Select(n => n.GetString()));
        var table = Isotun("sites", "--tenant", SitesFixture.Acme);
        Assert.Contains("branch-b", table);
        Assert.Contains("192.168.20.0/24", table);
    }

    [SkippableFact]
    public void After_a_server_restart_both_gateways_come_back_and_the_sites_reach_each_other_again()
    {
        SkipUnlessReady();
        AssertPing(SitesFixture.HostA, HostB);
        LabProcess.Stop(lab.Files, "server", TimeSpan.FromSeconds(10));
        lab.StartServer();
        // openconnect and isotun connect both come back with their cookies; the site routes follow their sessions.
        foreach (var (from, to) in new[] { (SitesFixture.HostA, HostB), (SitesFixture.HostB, HostA), (SitesFixture.ClientOf("alice").Ns, HostB) })
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(60), () => Pinger.Ping(from, to, 1, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)).Success),
                $"{from} does not reach {to} after the restart:\n{LabProcess.Tail(lab.Files, "server")}\n{lab.ClientLog("gw-b")}");
        Assert.Equal($"hello from {SitesFixture.HostB}", Fetch(SitesFixture.HostA, HostB));
    }

    private double SpoofedDrops() =>
        ServerMetrics.Sum(ServerMetrics.Scrape(SitesFixture.ServerNs), "isotun_tunnel_drops_total", $"tenant=\"{SitesFixture.Acme}\"", "reason=\"spoofed-source\"");

    private string Isotun(params string[] args)
    {
        var r = Run.Exec(TestEnvironment.IsotunExe, [.. args, "--config", lab.ConfigPath]);
        Assert.True(r.ExitCode == 0, $"isotun {string.Join(' ', args)} failed: {r}");
        return r.Stdout;
    }

    private static void AssertPing(string ns, IPAddress target)
    {
        var r = Pinger.Ping(ns, target, count: 3, interval: TimeSpan.FromMilliseconds(200), wait: TimeSpan.FromSeconds(2));
        Assert.True(r.Success, $"ping {target} from {ns} failed: {r}");
    }

    private static string Fetch(string ns, IPAddress target) =>
        TryFetch(ns, target) ?? throw new Xunit.Sdk.XunitException($"no answer from {target}:{LabLayout.ServicePort} in {ns}");

    /// <summary>The line the lab service at <paramref name="target"/> answers, or null when it cannot be reached within 3 s.</summary>
    private static string? TryFetch(string ns, IPAddress target) => NetworkNamespace.Run(ns, () =>
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 3000 };
        try
        {
            if (!s.ConnectAsync(new IPEndPoint(target, LabLayout.ServicePort)).Wait(TimeSpan.FromSeconds(3))) return null;
            var buf = new byte[256];
            int n = s.Receive(buf);
            return Encoding.UTF8.GetString(buf, 0, n).Trim();
        }
        catch (Exception e) when (e is SocketException or AggregateException)
        {
            return null;
        }
    });
}
