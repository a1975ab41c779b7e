using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Protocol.Proxy;
using static Isotun.Integration.Gateway.GatewayLabFixture;

namespace Isotun.Integration.Gateway;

/// <summary>
/// The edge gateway for real: stock openconnect through SNI passthrough and through TLS termination (hybrid, one config),
/// openssl s_client for SNI edge cases, untrusted and malformed PROXY headers at the server, and a slowloris plus a
/// connection flood that the gateway sheds while a legitimate client still gets in.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class GatewayTests(GatewayLabFixture lab)
{
    private void SkipUnlessReady() => Skip.If(lab.SkipReason is not null, lab.SkipReason);

    private static string Url(string tenant) => $"https://vpn.{tenant}.example/";

    private Run.Result Authenticate(string tenant, string pin, string? password, params string[] extra) =>
        Run.Exec("ip", ["netns", "exec", Cli, "openconnect", "--protocol=anyconnect", "--authenticate", "--non-inter",
            "--resolve", $"vpn.{tenant}.example:{EdgeIp}", "--servercert", pin, "--user", "alice",
            .. (password is null ? Array.Empty<string>() : ["--passwd-on-stdin"]), .. extra, Url(tenant)],
            stdin: password is null ? null : password + "\n", timeoutSeconds: 60);

    private double GatewayMetric(string name, string filter = "") => Metric(Edge, GatewayAdmin, name, filter);

    [SkippableFact]
    public void Openconnect_logs_in_through_sni_passthrough_and_sees_each_tenants_own_certificate()
    {
        SkipUnlessReady();
        foreach (var tenant in new[] { "acme", "globex" })
        {
            // The pin is the tenant server's own certificate: the gateway never saw a key, it passed the bytes through.
            var r = Authenticate(tenant, lab.Pins[tenant], lab.Password);
            Assert.True(r.ExitCode == 0 && r.Stdout.Contains("COOKIE="), $"{tenant}: {r}");
        }

        // And the wrong pin (the edge's certificate) is refused: passthrough does not terminate.
        var wrong = Authenticate("acme", lab.Pins["initech-edge"], lab.Password);
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.True(GatewayMetric("isotun_gateway_forwarded_total", "mode=\"passthrough\"") >= 3);
    }

    [SkippableFact]
    public void Openconnect_tunnels_through_passthrough_and_through_termination()
    {
        SkipUnlessReady();
        Tunnel("acme", lab.Pins["acme"], "10.31.0.1");
        Tunnel("initech", lab.Pins["initech-edge"], "10.33.0.1");
        Assert.True(GatewayMetric("isotun_gateway_tls_handshakes_total", "result=\"ok\"") >= 1);
        // The terminated tenant's server got the connections over PROXY v2 from the trusted gateway.
        Assert.True(Metric(Srv, InitechAdmin, "isotun_proxy_connections_total", "result=\"accepted\"") >= 1);
    }

    [SkippableFact]
    public void Passthrough_with_proxy_v2_gives_the_server_the_clients_address_and_keeps_the_clients_own_tls()
    {
        SkipUnlessReady();
        // globex's route passes TLS through behind a PROXY v2 header, to a listener with `proxy.tls: true`.
        Tunnel("globex", lab.Pins["globex"], "10.32.0.1");
        Assert.True(Metric(Srv, GlobexAdmin, "isotun_proxy_connections_total", "result=\"accepted\"") >= 1);
        // The server saw the client host's address, not the gateway's, and its own TLS (the pin above is its own).
        var log = File.ReadAllLines(LabProcess.LogPath(lab.Layout, "server-globex"));
        Assert.Contains(log, l => l.Contains("tunnel up for alice") && l.Contains($"from {CliIp}:"));
        Assert.DoesNotContain(log, l => l.Contains("tunnel up for alice") && l.Contains($"from {EdgeSrvSide}:"));
    }

    [SkippableFact]
    public void A_client_certificate_verified_at_the_gateway_logs_in_without_a_password()
    {
        SkipUnlessReady();
        var r = Authenticate("initech", lab.Pins["initech-edge"], null, "-c", lab.AliceCert.CertificatePath, "-k", lab.AliceCert.KeyPath);
        Assert.True(r.ExitCode == 0 && r.Stdout.Contains("COOKIE="), r.ToString());
        Assert.Contains("login alice: ok", ProcessLogs.Once(lab.Layout, "server-initech", "login alice: ok"));
    }

    [SkippableFact]
    public void A_certificate_of_another_tenant_from_the_same_CA_is_refused_through_a_terminating_route()
    {
        SkipUnlessReady();
        // The gateway's initech route trusts the CA that issued this OU=acme certificate, and says so in PROXY v2; the
        // server checks the forwarded certificate against initech itself, and refuses it.
        var cert = lab.AcmeCertFromTheSharedCa;
        var r = Authenticate("initech", lab.Pins["initech-edge"], null, "-c", cert.CertificatePath, "-k", cert.KeyPath);
        Assert.False(r.Stdout.Contains("COOKIE="), r.ToString());
        Assert.NotEqual(0, r.ExitCode);
        var log = ProcessLogs.Once(lab.Layout, "server-initech", "login -: wrong-tenant");
        // Seen once without the line: say what the gateway and the client saw, should it happen again.
        Assert.True(log.Contains("login -: wrong-tenant", StringComparison.Ordinal),
            $"server-initech did not log the refusal.\nserver log (end):\n{Tail(log)}\ngateway log (end):\n{Tail(File.ReadAllText(LabProcess.LogPath(lab.Layout, "gateway")))}\nopenconnect: {r}");
        Assert.DoesNotContain("login mallory: ok", log);
        Assert.True(Metric(Srv, InitechAdmin, "isotun_auth_attempts_total", "result=\"wrong-tenant\"") >= 1);
    }

    private static string Tail(string log) => log.Length > 4000 ? log[^4000..] : log;

    /// <summary>openconnect with its TUN in the client host; ping the tenant server's tunnel address; log off with SIGINT.</summary>
    private void Tunnel(string tenant, string pin, string serverTunnelIp)
    {
        var device = "oc-" + tenant;
        var psi = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", Cli, "openconnect", "--protocol=anyconnect", "--non-inter", "--resolve", $"vpn.{tenant}.example:{EdgeIp}",
                     "--servercert", pin, "--user", "alice", "--passwd-on-stdin", "--script", lab.TunScript, "--interface", device, Url(tenant)])
            psi.ArgumentList.Add(a);
        using var oc = Process.Start(psi)!;
        oc.StandardInput.WriteLine(lab.Password);
        oc.StandardInput.Close();
        var stdout = oc.StandardOutput.ReadToEndAsync();
        var stderr = oc.StandardError.ReadToEndAsync();
        try
        {
            bool up = Eventually.Until(TimeSpan.FromSeconds(30), () => Run.Exec("ip", ["-n", Cli, "-4", "-o", "addr", "show", "dev", device]).Stdout.Contains("inet "));
            Assert.True(up, $"{tenant}: no tunnel address; openconnect said: {(oc.HasExited ? stdout.Result + stderr.Result : "(running)")}");
            var ping = Run.InNs(Cli, "ping", "-c", "3", "-i", "0.2", "-W", "2", serverTunnelIp);
            Assert.True(ping.ExitCode == 0, $"{tenant}: ping {serverTunnelIp} through the tunnel failed: {ping}");
        }
        finally
        {
            if (!oc.HasExited)
            {
                LabProcess.Signal(oc.Id, "INT");
                if (!oc.WaitForExit(TimeSpan.FromSeconds(10))) oc.Kill();
            }
        }
    }

    /// <summary>
    /// Started with SIGHUP ignored (as under nohup, or by a supervisor that ignores it), the gateway still reloads its
    /// file on SIGHUP: the runtime never handles a signal it finds ignored, so the gateway hears it again first.
    /// </summary>
    [SkippableFact]
    public void A_gateway_started_with_sighup_ignored_still_reloads_on_it()
    {
        SkipUnlessReady();
        const string name = "gateway-nohup";
        var config = Path.Combine(lab.Dir, name + ".yaml");
        File.WriteAllText(config, File.ReadAllText(lab.GatewayConfig).Replace("listen: 0.0.0.0:443", $"listen: {BadIp}:443", StringComparison.Ordinal));
        int pid = LabProcess.Start(lab.Layout, name, Bad, "/bin/sh",
            ["-c", "trap '' HUP; exec \"$0\" \"$@\"", TestEnvironment.IsotunExe, "gateway", "--config", config]);
        try
        {
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => DemoLab.Listening(Bad, new IPEndPoint(BadIp, 443)), hopeless: () => !LabProcess.IsAlive(pid)),
                LabProcess.Tail(lab.Layout, name));
            // Its SIGHUP handler comes just after its listener: signalled until it reloads.
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () =>
                {
                    if (File.ReadAllText(LabProcess.LogPath(lab.Layout, name)).Contains($"reloaded {config}")) return true;
                    LabProcess.Signal(pid, "HUP");
                    Thread.Sleep(300);
                    return false;
                }), "no reload on SIGHUP:\n" + LabProcess.Tail(lab.Layout, name));
            Assert.True(LabProcess.IsAlive(pid));
            var ignored = File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            Assert.Equal(0UL, Convert.ToUInt64(ignored["SigIgn:".Length..].Trim(), 16) & 1); // SIGHUP is signal 1
        }
        finally
        {
            LabProcess.Stop(lab.Layout, name, TimeSpan.FromSeconds(5));
        }
    }

    [SkippableFact]
    public void Openssl_sni_edge_cases_are_routed_or_refused()
    {
        SkipUnlessReady();
        double refusedBefore = GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"no-sni\"")
            + GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"no-route\"");

        // Upper case and a trailing dot still pick acme's own server (its certificate comes back).
        foreach (var name in new[] { "VPN.ACME.EXAMPLE", "vpn.acme.example." })
            Assert.Contains("CN=vpn.acme.example", SClient("-servername", name), StringComparison.OrdinalIgnoreCase);
        // The wildcard route: any name under globex.example.
        Assert.Contains("CN=vpn.globex.example", SClient("-servername", "portal.eu.globex.example"), StringComparison.OrdinalIgnoreCase);
        // The terminating route presents the edge's certificate for initech.
        Assert.Contains("CN=vpn.initech.example", SClient("-servername", "vpn.initech.example"), StringComparison.OrdinalIgnoreCase);
        // No SNI, and an unknown name: closed without a certificate.
        Assert.DoesNotContain("BEGINCERTIFICATE", SClient("-noservername"));
        Assert.DoesNotContain("BEGINCERTIFICATE", SClient("-servername", "vpn.unknown.example"));
        // Plain HTTP is not TLS: closed, nothing forwarded.
        var http = Run.InNs(Cli, "curl", "-s", "--max-time", "5", $"http://{EdgeIp}:443/");
        Assert.NotEqual(0, http.ExitCode);

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(5), () =>
            GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"no-sni\"") + GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"no-route\"") >= refusedBefore + 2));
        Assert.True(GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"not-tls\"") >= 1);
    }

    /// <summary>openssl s_client's output with spaces removed ("CN = x" and "CN=x" read the same).</summary>
    private static string SClient(params string[] args)
    {
        var r = Run.Exec("ip", ["netns", "exec", Cli, "openssl", "s_client", "-connect", $"{EdgeIp}:443", "-showcerts", .. args], stdin: "", timeoutSeconds: 20);
        return (r.Stdout + r.Stderr).Replace(" ", "");
    }

    [SkippableFact]
    public void The_server_closes_proxy_headers_from_untrusted_addresses_and_malformed_ones()
    {
        SkipUnlessReady();
        double untrusted = Metric(Srv, InitechAdmin, "isotun_proxy_connections_total", "result=\"untrusted\"");
        double malformed = Metric(Srv, InitechAdmin, "isotun_proxy_connections_total", "result=\"malformed\"");
        var valid = ProxyV2Writer.ToArray(new ProxyHeader(ProxyCommand.Proxy, new IPEndPoint(CliIp, 40000), new IPEndPoint(EdgeIp, 443), "vpn.initech.example",
            new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0, "TLSv1.3", "alice")));

        // A perfectly valid header claiming a verified certificate, but from an address that is not a trusted gateway.
        Assert.True(SendAndIsClosed(Untrusted, valid), "untrusted peer was not closed");
        // From the trusted gateway address, but malformed: a TLV that overruns the header.
        var broken = (byte[])valid.Clone();
        broken[ProxyV2.PrefixLength + 12 + 1] = 0x7F;
        Assert.True(SendAndIsClosed(EdgeSrvSide, broken), "malformed header was not closed");

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(5), () =>
            Metric(Srv, InitechAdmin, "isotun_proxy_connections_total", "result=\"untrusted\"") >= untrusted + 1
            && Metric(Srv, InitechAdmin, "isotun_proxy_connections_total", "result=\"malformed\"") >= malformed + 1));
    }

    /// <summary>From the edge namespace, bound to <paramref name="source"/>: send, then expect the server to close without answering.</summary>
    private static bool SendAndIsClosed(IPAddress source, byte[] data) => NetworkNamespace.Run(Edge, () =>
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000 };
        s.Bind(new IPEndPoint(source, 0));
        s.Connect(new IPEndPoint(InitechIp, ProxyPort));
        try
        {
            s.Send(data);
            s.Send("POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"u8);
            var buf = new byte[256];
            return s.Receive(buf) == 0;
        }
        catch (SocketException)
        {
            return true; // reset
        }
    });

    [SkippableFact]
    public void A_slowloris_and_a_connection_flood_are_shed_while_a_legitimate_client_gets_in()
    {
        SkipUnlessReady();
        double timeouts = GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"timeout\"");
        double rejected = GatewayMetric("isotun_gateway_rejected_total");

        // Bounded: 60 slow connections (one byte each, then silence) and a flood of at most 1500 connects within 6 s.
        var attack = Task.Run(() => NetworkNamespace.Run(Bad, () =>
        {
            var slow = new List<Socket>();
            for (int i = 0; i < 60; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    s.Connect(new IPEndPoint(EdgeBadSide, 443));
                    s.Send([0x16]);
                }
                catch (SocketException)
                {
                }

                slow.Add(s);
            }

            var until = DateTime.UtcNow.AddSeconds(6);
            int flood = 0;
            while (DateTime.UtcNow < until && flood < 1500)
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    s.Connect(new IPEndPoint(EdgeBadSide, 443));
                }
                catch (SocketException)
                {
                }

                flood++;
            }

            Thread.Sleep(2500); // past the preread timeout: the slow ones must have been cut
            int cut = 0;
            foreach (var s in slow)
            {
                try
                {
                    s.Blocking = false;
                    var buf = new byte[1];
                    if (s.Receive(buf) == 0) cut++;
                }
                catch (SocketException e) when (e.SocketErrorCode != SocketError.WouldBlock)
                {
                    cut++;
                }
                catch (SocketException)
                {
                }

                s.Dispose();
            }

            return (flood, cut);
        }));

        // Meanwhile, from the client host, a real login through the gateway.
        Thread.Sleep(1000);
        var r = Authenticate("acme", lab.Pins["acme"], lab.Password);
        var (floodCount, cutCount) = attack.Result;
        Assert.True(r.ExitCode == 0 && r.Stdout.Contains("COOKIE="), "legitimate client was shed too: " + r);
        Assert.True(cutCount == 60, $"only {cutCount} of 60 slow connections were cut");
        Assert.True(floodCount > 0);
        Assert.True(GatewayMetric("isotun_gateway_clienthello_total", "outcome=\"timeout\"") > timeouts, "slowloris timeouts not counted:\n" + Run.InNs(Edge, "curl", "-s", $"http://127.0.0.1:{GatewayAdmin}/metrics").Stdout);
        Assert.True(GatewayMetric("isotun_gateway_rejected_total") > rejected, "flood refusals not counted");
    }

}
