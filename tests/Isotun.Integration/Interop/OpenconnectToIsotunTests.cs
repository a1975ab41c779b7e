using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>
/// The stock Debian openconnect client against `isotun server`, for real: separate processes in namespaces,
/// openconnect's own TUN configured by the shipped tun-script.sh (or no TUN at all with --script-tun).
/// </summary>
[Collection(IsotunServerLabCollection.Name)]
public sealed class OpenconnectToIsotunTests(IsotunServerLab lab)
{
    private static readonly TimeSpan Up = TimeSpan.FromSeconds(30);
    private LabLayout L => lab.Layout;
    private string Url => $"https://{L.ServerIp}/";

    [SkippableFact]
    public void Password_login_with_authgroup_pings_and_moves_100_MB_byte_identical()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant,
             "--script", lab.TunScript, "--interface", "oc-pass", Url], stdin: lab.Password + "\n");
        var address = WaitForAddress(oc, "oc-pass");
        Assert.True(Traffic.InPool(address, L.Pool), $"address {address} is not from tenant {LabLayout.Tenant}'s pool {L.Pool}");

        Traffic.AssertPing(L.ClientNs, L.TunnelGateway);
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        Traffic.AssertPing(L.ServiceNs, address); // back through the tenant's namespace and the tunnel
        Traffic.AssertTransfer(L.ClientNs, L.ServiceIp);

        AssertLogsOff(oc);
    }

    [SkippableFact]
    public void Password_login_with_the_tenant_in_the_URL_path()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        // No --authgroup: the path names the tenant, and the server's form then has no group list at all.
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin",
             "--script", lab.TunScript, "--interface", "oc-path", $"https://{L.ServerIp}/{LabLayout.Tenant}"], stdin: lab.Password + "\n");
        var address = WaitForAddress(oc, "oc-path");
        Assert.True(Traffic.InPool(address, L.Pool), $"address {address} is not from tenant {LabLayout.Tenant}'s pool {L.Pool}");
        Assert.Contains($"POST https://{L.ServerIp}/{LabLayout.Tenant}", oc.Output);
        Assert.DoesNotContain("GROUP:", oc.Output, StringComparison.OrdinalIgnoreCase);

        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        AssertLogsOff(oc);

        // The other tenant by its path: an address from its own pool.
        using var quick = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin",
             "--script", lab.TunScript, "--interface", "oc-path2", $"https://{L.ServerIp}/{IsotunServerLab.QuickTenant}"], stdin: lab.Password + "\n");
        var quickAddress = WaitForAddress(quick, "oc-path2");
        Assert.True(Traffic.InPool(quickAddress, IsotunServerLab.QuickPool), $"address {quickAddress} is not from tenant {IsotunServerLab.QuickTenant}'s pool {IsotunServerLab.QuickPool}");
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.QuickGateway);
        AssertLogsOff(quick);
    }

    [SkippableFact]
    public void Certificate_login_pings_and_moves_100_MB_byte_identical()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        // No user, no password, no group: the certificate names user (UID) and tenant (OU).
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--certificate", lab.CertificatePath, "--sslkey", lab.KeyPath,
             "--script", lab.TunScript, "--interface", "oc-cert", Url]);
        var address = WaitForAddress(oc, "oc-cert");
        Assert.True(Traffic.InPool(address, L.Pool), $"address {address} is not from tenant {LabLayout.Tenant}'s pool {L.Pool}");
        Assert.DoesNotContain("Password", oc.Output);

        Traffic.AssertPing(L.ClientNs, L.TunnelGateway);
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        Traffic.AssertTransfer(L.ClientNs, L.ServiceIp, seed: 5);
        AssertLogsOff(oc);
    }

    [SkippableFact]
    public void A_certificate_of_one_tenant_does_not_open_another()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var r = Run.Exec("ip", ["netns", "exec", L.ClientNs, InteropEnvironment.OpenconnectPath!, "--authenticate",
            .. Openconnect.Base(lab.Pin), "--certificate", lab.CertificatePath, "--sslkey", lab.KeyPath,
            $"https://{L.ServerIp}/{IsotunServerLab.QuickTenant}"], timeoutSeconds: 60);
        Assert.True(r.ExitCode != 0 && r.ExitCode != -1, "openconnect logged into the wrong tenant with a demo certificate: " + r);
        Assert.DoesNotContain("COOKIE=", r.Stdout);
    }

    [SkippableFact]
    public void Openconnect_refuses_the_server_when_the_pin_does_not_match()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var r = Run.Exec("ip", ["netns", "exec", L.ClientNs, InteropEnvironment.OpenconnectPath!, "--authenticate",
            .. Openconnect.Base("pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), "--user", LabLayout.User, "--passwd-on-stdin", Url],
            stdin: lab.Password + "\n", timeoutSeconds: 60);
        Assert.True(r.ExitCode != 0 && r.ExitCode != -1, "openconnect accepted a server that does not match the pin: " + r);
        Assert.DoesNotContain("COOKIE=", r.Stdout);
        Assert.Contains("certificate", r.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [SkippableFact]
    public void Without_root_script_tun_carries_pings_to_the_gateway_and_the_service()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        Skip.If(InteropEnvironment.SkipScriptTun is not null, InteropEnvironment.SkipScriptTun);
        var tunsBefore = Traffic.TunDevices(L.ClientNs);
        using var oc = Openconnect.StartAsNobody(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant,
             "--script-tun", "--script", $"{InteropEnvironment.Python3Path} {lab.PingScript}", Url],
            stdin: lab.Password + "\n",
            environment: new Dictionary<string, string> { ["PING_TARGETS"] = $"{L.TunnelGateway} {L.ServiceIp}" });

        Assert.True(oc.WaitFor(() => oc.Output.Contains($"reply from {L.ServiceIp}"), TimeSpan.FromSeconds(60)), "no ping result: " + oc);
        Assert.Contains($"\nreply from {L.TunnelGateway}\n", "\n" + oc.Output);
        Assert.Contains($"\nreply from {L.ServiceIp}\n", "\n" + oc.Output);
        Assert.False(oc.HasExited, "openconnect ended early: " + oc);
        // Unprivileged and without a kernel TUN: nothing was added to the namespace.
        Assert.Equal(tunsBefore, Traffic.TunDevices(L.ClientNs));
        AssertLogsOff(oc);
    }

    [SkippableFact]
    public void After_kill_9_the_cookie_reconnects_to_the_same_address()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var auth = Openconnect.Authenticate(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant, Url], lab.Password + "\n");
        string cookie = auth["COOKIE"], fingerprint = auth["FINGERPRINT"], connectUrl = auth["CONNECT_URL"];
        Assert.StartsWith("pin-sha256:", fingerprint);
        string[] withCookie = ["--protocol=anyconnect", "--non-inter", "--cookie-on-stdin", "--servercert", fingerprint, "--script", lab.TunScript];

        IPAddress first;
        using (var oc = Openconnect.Start(L.ClientNs, [.. withCookie, "--interface", "oc-cookie", connectUrl], stdin: cookie + "\n"))
        {
            first = WaitForAddress(oc, "oc-cookie");
            oc.Signal("KILL"); // no BYE: the session must survive
            Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(10)), "openconnect did not die on SIGKILL");
        }

        // While the session waits for its client, its address stays its own: a fresh login of the same user
        // is a new session and gets another one.
        using var fresh = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant,
             "--script", lab.TunScript, "--interface", "oc-fresh", Url], stdin: lab.Password + "\n");
        var other = WaitForAddress(fresh, "oc-fresh");
        Assert.NotEqual(first, other);

        double loginsBefore = lab.Metric("isotun_auth_attempts_total", "result=\"ok\"");
        using var again = Openconnect.Start(L.ClientNs, [.. withCookie, "--interface", "oc-cookie", connectUrl], stdin: cookie + "\n");
        var second = WaitForAddress(again, "oc-cookie");
        Assert.Equal(first, second);
        // The cookie resumed the session: no login happened on the server.
        Assert.Equal(loginsBefore, lab.Metric("isotun_auth_attempts_total", "result=\"ok\""));
        Traffic.AssertPing(L.ClientNs, L.ServiceIp); // the routes now point at oc-cookie, the resumed tunnel
        AssertLogsOff(again);
        AssertLogsOff(fresh);
    }

    [SkippableFact]
    public void After_SIGTERM_the_cookie_is_refused()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var auth = Openconnect.Authenticate(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant, Url], lab.Password + "\n");
        string[] withCookie = ["--protocol=anyconnect", "--non-inter", "--cookie-on-stdin", "--servercert", auth["FINGERPRINT"],
            "--script", lab.TunScript, "--interface", "oc-bye", auth["CONNECT_URL"]];

        using (var oc = Openconnect.Start(L.ClientNs, withCookie, stdin: auth["COOKIE"] + "\n"))
        {
            WaitForAddress(oc, "oc-bye");
            AssertLogsOff(oc); // SIGTERM: openconnect sends DISCONNECT 0xb0 (BYE)
        }

        var r = Run.Exec("ip", ["netns", "exec", L.ClientNs, InteropEnvironment.OpenconnectPath!, .. withCookie], stdin: auth["COOKIE"] + "\n", timeoutSeconds: 60);
        Assert.True(r.ExitCode == 2, "openconnect should exit 2 (cookie rejected): " + r);
        Assert.Contains("Cookie was rejected", r.Stderr + r.Stdout);
    }

    [SkippableFact]
    public void The_server_detects_a_frozen_openconnect_by_DPD_and_the_session_survives()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        double deadBefore = lab.Metric("isotun_connections_closed_total", "reason=\"dead-peer\"");
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", IsotunServerLab.QuickTenant,
             "--script", lab.TunScript, "--interface", "oc-frozen", Url], stdin: lab.Password + "\n");
        var address = WaitForAddress(oc, "oc-frozen");
        Assert.Contains($"DPD {IsotunServerLab.QuickDpd},", oc.Output);

        oc.Signal("STOP"); // silent: no DPD answers, no keepalives, but its TCP connection stays open
        try
        {
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(90), () => lab.Metric("isotun_connections_closed_total", "reason=\"dead-peer\"") > deadBefore),
                "the server did not drop the silent client:\n" + LabProcess.Tail(L, "server"));
        }
        finally
        {
            oc.Signal("CONT");
        }
        // The session outlives its dead connection: the thawed client reconnects with its cookie, same address.
        Assert.True(oc.WaitFor(() => Traffic.TunAddress(L.ClientNs, "oc-frozen") is not null && oc.Count("Got CONNECT response: HTTP/1.1 200") >= 2, Up),
            "openconnect did not reconnect after the server dropped it: " + oc);
        Assert.Equal(address, Traffic.TunAddress(L.ClientNs, "oc-frozen"));
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.QuickGateway);
        AssertLogsOff(oc);
    }

    [SkippableFact]
    public void Openconnect_detects_a_frozen_server_by_DPD_and_reconnects_when_it_thaws()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", IsotunServerLab.QuickTenant,
             "--script", lab.TunScript, "--interface", "oc-dpd", Url], stdin: lab.Password + "\n");
        var address = WaitForAddress(oc, "oc-dpd");

        int server = lab.ServerPid;
        Run.Exec("kill", ["-STOP", server.ToString()]);
        try
        {
            Assert.True(oc.WaitForOutput("detected dead peer", TimeSpan.FromSeconds(90)), "openconnect did not detect the frozen server: " + oc);
        }
        finally
        {
            Run.Exec("kill", ["-CONT", server.ToString()]);
        }
        Assert.True(oc.WaitFor(() => oc.Count("Got CONNECT response: HTTP/1.1 200") >= 2, TimeSpan.FromSeconds(90)),
            "openconnect did not reconnect after the server thawed: " + oc);
        Assert.Equal(address, Traffic.TunAddress(L.ClientNs, "oc-dpd"));
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.QuickGateway);
        AssertLogsOff(oc);
    }

    [SkippableFact]
    public void Isotun_connect_detects_a_frozen_server_by_DPD_and_reconnects_when_it_thaws()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        // The client's READY=1 (through NOTIFY_SOCKET, as the lab waits for it): its TUN is up, routed and read, which
        // an address alone does not say; the server is frozen only once the session is whole.
        using var ready = new NotifySocket(Path.Combine(Path.GetTempPath(), $"isotun-oc-{Environment.ProcessId}-it-dpd.notify"));
        using var client = BackgroundProcess.StartInNs(L.ClientNs, TestEnvironment.IsotunExe,
            ["connect", Url, "--user", LabLayout.User, "--password-file", L.UserPasswordPath, "--authgroup", IsotunServerLab.QuickTenant,
             "--servercert", lab.Pin, "--interface", "it-dpd"],
            environment: new Dictionary<string, string> { [SystemdNotify.Variable] = ready.Path });
        Assert.True(client.WaitFor(() => ready.ReadyWithin(TimeSpan.FromMilliseconds(200)), Up),
            "isotun connect did not report the tunnel ready: " + client);
        var address = Traffic.TunAddress(L.ClientNs, "it-dpd");

        int server = lab.ServerPid;
        Run.Exec("kill", ["-STOP", server.ToString()]);
        try
        {
            Assert.True(client.WaitForOutput("dead peer", TimeSpan.FromSeconds(90)), "isotun connect did not detect the frozen server: " + client);
        }
        finally
        {
            Run.Exec("kill", ["-CONT", server.ToString()]);
        }
        Assert.True(client.WaitForOutput("reconnected with the same address", TimeSpan.FromSeconds(90)), "isotun connect did not reconnect: " + client);
        Assert.Equal(address, Traffic.TunAddress(L.ClientNs, "it-dpd"));
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.QuickGateway);
        client.Signal("TERM");
        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(15)) && client.ExitCode == 0, "isotun connect did not log off cleanly: " + client);
    }

    private IPAddress WaitForAddress(BackgroundProcess oc, string device)
    {
        IPAddress? address = null;
        Assert.True(oc.WaitFor(() => (address = Traffic.TunAddress(L.ClientNs, device)) is not null, Up), $"no address on {device}: {oc}");
        return address!;
    }

    /// <summary>SIGTERM: openconnect sends BYE, says so, and exits.</summary>
    [SkippableFact]
    public void When_the_server_stops_openconnect_reconnects_to_the_next_server_process_with_its_cookie()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var oc = Openconnect.Start(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant,
             "--script", lab.TunScript, "--interface", "oc-restart", Url], stdin: lab.Password + "\n");
        var address = WaitForAddress(oc, "oc-restart");
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);

        // SIGTERM: the server closes the tunnel with a TLS close_notify and exits; openconnect stays up and retries.
        LabProcess.Stop(L, "server", TimeSpan.FromSeconds(20));
        Assert.Contains("stopping: no new connections", lab.ServerLog);
        Assert.False(oc.HasExited, "openconnect gave up when the server went away: " + oc);

        lab.StartServer();
        // The same session, resumed by its cookie on the new process: no login, the same address, traffic flows.
        Assert.True(oc.WaitFor(() => oc.Count("Got CONNECT response: HTTP/1.1 200") >= 2, TimeSpan.FromSeconds(90)),
            "openconnect did not reconnect to the new server: " + oc);
        Assert.Equal(address, Traffic.TunAddress(L.ClientNs, "oc-restart"));
        Assert.Equal(0, lab.Metric("isotun_auth_attempts_total", "result=\"ok\""));
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(20), () => Isotun.Linux.Pinger.Ping(L.ClientNs, L.ServiceIp, 1, TimeSpan.Zero, TimeSpan.FromSeconds(1)).Success), "no traffic after the reconnect");
        AssertLogsOff(oc);
    }

    /// <summary>The lab keeps its ticket key (tls.ticket-key-file): a session ticket outlives the server process, so
    /// the first client back after a restart resumes its TLS session instead of a full handshake.</summary>
    [SkippableFact]
    public void A_tls_session_ticket_from_one_server_process_resumes_on_the_next()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var session = Path.Combine(L.Directory, "s_client-session.pem");
        string SClient(string option) => Run.SClientSession(L.ClientNs, $"{L.ServerIp}:443", option, session);
        var first = SClient("-sess_out");
        Assert.True(first.Contains("New, TLSv1.3"), first);
        Assert.True(File.Exists(session), "s_client kept no session: " + first);

        LabProcess.Stop(L, "server", TimeSpan.FromSeconds(20));
        lab.StartServer();
        Assert.Contains("TLS session tickets sealed with the key in", lab.ServerLog);
        var second = SClient("-sess_in");
        Assert.True(second.Contains("Reused, TLSv1.3"), second + "\nserver log:\n" + lab.ServerLog);
        Assert.Equal(1, lab.Metric("isotun_tls_handshakes_total", "kind=\"resumed\""));
    }

    [SkippableFact]
    public void The_admin_cli_lists_a_stock_and_an_isotun_session_and_a_kick_ends_the_stock_one_for_good()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var auth = Openconnect.Authenticate(L.ClientNs,
            [.. Openconnect.Base(lab.Pin), "--user", LabLayout.User, "--passwd-on-stdin", "--authgroup", LabLayout.Tenant, Url], lab.Password + "\n");
        string[] withCookie = ["--protocol=anyconnect", "--non-inter", "--cookie-on-stdin", "--servercert", auth["FINGERPRINT"],
            "--script", lab.TunScript, "--interface", "oc-admin", auth["CONNECT_URL"]];
        using var oc = Openconnect.Start(L.ClientNs, withCookie, stdin: auth["COOKIE"] + "\n");
        var address = WaitForAddress(oc, "oc-admin");
        // And an isotun client beside it.
        LabProcess.Start(L, "client-admin", L.ClientNs, TestEnvironment.IsotunExe,
            ["connect", Url, "--user", LabLayout.User, "--password-file", L.UserPasswordPath, "--servercert", lab.Pin, "--interface", "isotun-adm", "--no-routes"]);
        try
        {
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => Traffic.TunAddress(L.ClientNs, "isotun-adm") is not null), LabProcess.Tail(L, "client-admin"));
            AdminListsKicksAndLeavesTheOther(oc, withCookie, auth["COOKIE"], address);
        }
        finally
        {
            LabProcess.Stop(L, "client-admin", TimeSpan.FromSeconds(10));
        }
    }

    private void AdminListsKicksAndLeavesTheOther(BackgroundProcess oc, string[] withCookie, string cookie, IPAddress address)
    {
        // The occtl of Isotun, over the server's unix socket found through its config file.
        var listed = Run.Exec(TestEnvironment.IsotunExe, ["sessions", "--config", lab.ConfigPath, "--json"]);
        Assert.True(listed.ExitCode == 0, listed.ToString());
        using var doc = System.Text.Json.JsonDocument.Parse(listed.Stdout);
        var sessions = doc.RootElement.EnumerateArray().ToList();
        var stock = Assert.Single(sessions, s => s.GetProperty("address").GetString() == address.ToString());
        Assert.Contains("AnyConnect", stock.GetProperty("clientVersion").GetString());
        Assert.True(sessions.Any(s => s.GetProperty("connected").GetBoolean() && (s.GetProperty("clientVersion").GetString() ?? "").EndsWith("-isotun", StringComparison.Ordinal)), listed.Stdout);
        var table = Run.Exec(TestEnvironment.IsotunExe, ["sessions", "--config", lab.ConfigPath, "--tenant", LabLayout.Tenant]);
        Assert.Contains("TENANT", table.Stdout);
        Assert.Contains(address.ToString(), table.Stdout);

        var id = stock.GetProperty("id").GetString()!;
        var kick = Run.Exec(TestEnvironment.IsotunExe, ["kick", id[..8], "--config", lab.ConfigPath]);
        Assert.True(kick.ExitCode == 0, kick.ToString());
        // openconnect is told (a DISCONNECT) and stops; its cookie no longer opens a tunnel.
        Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(60)), "openconnect did not end after the kick: " + oc);
        Assert.Contains("Received server disconnect", oc.Output);
        using var again = Openconnect.Start(L.ClientNs, withCookie, stdin: cookie + "\n");
        Assert.True(again.WaitForExit(TimeSpan.FromSeconds(60)), "openconnect with a kicked cookie did not give up: " + again);
        Assert.Null(Traffic.TunAddress(L.ClientNs, "oc-admin"));
        // The isotun client was not touched.
        Assert.Equal(0, Run.Exec(TestEnvironment.IsotunExe, ["status", "--config", lab.ConfigPath]).ExitCode);
        var after = Run.Exec(TestEnvironment.IsotunExe, ["sessions", "--config", lab.ConfigPath, "--json"]);
        Assert.Contains("isotun", after.Stdout);
        Assert.NotNull(Traffic.TunAddress(L.ClientNs, "isotun-adm"));
    }

    [SkippableFact]
    public void A_certificate_revoked_by_crl_and_reload_ends_its_live_openconnect_session_and_cannot_log_in_again()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var pki = new Isotun.Pki.PkiDirectory(L.PkiDir);
        var carl = pki.IssueClient(LabLayout.Tenant, "carl", force: true);
        string[] login = [.. Openconnect.Base(lab.Pin), "--certificate", carl.CertificatePath, "--sslkey", carl.KeyPath, "--script", lab.TunScript, "--interface", "oc-crl", Url];
        using var oc = Openconnect.Start(L.ClientNs, login);
        WaitForAddress(oc, "oc-crl");

        var original = File.ReadAllText(lab.ConfigPath);
        try
        {
            // The operator's steps: revoke in the PKI, point the tenant at the CRL, reload.
            var revoke = Run.Exec(TestEnvironment.IsotunExe, ["pki", "revoke", carl.CertificatePath, "--dir", L.PkiDir]);
            Assert.True(revoke.ExitCode == 0, revoke.ToString());
            File.WriteAllText(lab.ConfigPath, original.Replace($"  - name: {LabLayout.Tenant}\n", $"  - name: {LabLayout.Tenant}\n    client-crl: {pki.CrlPath}\n"));
            var reload = Run.Exec(TestEnvironment.IsotunExe, ["reload", "--config", lab.ConfigPath]);
            Assert.True(reload.ExitCode == 0, reload.ToString());
            Assert.Contains("1 session(s) ended", reload.Stdout);

            Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(60)), "openconnect did not end after its certificate was revoked: " + oc);
            Assert.Contains("Received server disconnect", oc.Output);
            using var again = Openconnect.Start(L.ClientNs, login);
            Assert.True(again.WaitForExit(TimeSpan.FromSeconds(60)), "a revoked certificate logged in again: " + again);
            Assert.Null(Traffic.TunAddress(L.ClientNs, "oc-crl"));
            Assert.Contains("certificate revoked", lab.ServerLog + again.Output);
        }
        finally
        {
            File.WriteAllText(lab.ConfigPath, original);
            Run.Exec(TestEnvironment.IsotunExe, ["reload", "--config", lab.ConfigPath]);
            File.Delete(pki.CrlPath);
        }
    }

    [SkippableFact]
    public void A_revoked_user_and_a_removed_user_lose_their_openconnect_sessions_and_cookies()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        const string password = "rita-secret-1";
        Isotun.Security.PasswordFile.SetUser(L.PasswordFile, "rita", Isotun.Security.PasswordHasher.Hash(password, 10_000));
        try
        {
            Assert.Equal(0, Run.Exec(TestEnvironment.IsotunExe, ["reload", "--config", lab.ConfigPath]).ExitCode);
            BackgroundProcess Connect(out IReadOnlyDictionary<string, string> auth)
            {
                auth = Openconnect.Authenticate(L.ClientNs,
                    [.. Openconnect.Base(lab.Pin), "--user", "rita", "--passwd-on-stdin", "--authgroup", LabLayout.Tenant, Url], password + "\n");
                var oc = Openconnect.Start(L.ClientNs, ["--protocol=anyconnect", "--non-inter", "--cookie-on-stdin", "--servercert", auth["FINGERPRINT"],
                    "--script", lab.TunScript, "--interface", "oc-rita", auth["CONNECT_URL"]], stdin: auth["COOKIE"] + "\n");
                WaitForAddress(oc, "oc-rita");
                return oc;
            }
            void AssertCookieRefused(IReadOnlyDictionary<string, string> auth)
            {
                using var again = Openconnect.Start(L.ClientNs, ["--protocol=anyconnect", "--non-inter", "--cookie-on-stdin", "--servercert", auth["FINGERPRINT"],
                    "--script", lab.TunScript, "--interface", "oc-rita", auth["CONNECT_URL"]], stdin: auth["COOKIE"] + "\n");
                Assert.True(again.WaitForExit(TimeSpan.FromSeconds(60)), "a dead cookie opened a tunnel: " + again);
                Assert.Null(Traffic.TunAddress(L.ClientNs, "oc-rita"));
            }

            // Revoked by the operator: the session ends at once and the cookie dies, until the user is enabled.
            using (var oc = Connect(out var auth))
            {
                var revoke = Run.Exec(TestEnvironment.IsotunExe, ["revoke", "--tenant", LabLayout.Tenant, "--user", "rita", "--config", lab.ConfigPath]);
                Assert.True(revoke.ExitCode == 0 && revoke.Stdout.Contains("1 session(s) ended"), revoke.ToString());
                Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(60)), "openconnect did not end when its user was revoked: " + oc);
                AssertCookieRefused(auth);
            }
            Assert.Equal(0, Run.Exec(TestEnvironment.IsotunExe, ["revoke", "--enable", "--tenant", LabLayout.Tenant, "--user", "rita", "--config", lab.ConfigPath]).ExitCode);

            // Removed from the password file (`isotun user remove`): the same, for good, with no reload: the server reads
            // the changed file by itself.
            using (var oc = Connect(out var auth))
            {
                var removed = Run.Exec(TestEnvironment.IsotunExe, ["user", "remove", "--file", L.PasswordFile, "--user", "rita"]);
                Assert.True(removed.ExitCode == 0, removed.ToString());
                Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(60)), "openconnect did not end when its user was removed: " + oc);
                AssertCookieRefused(auth);
            }
        }
        finally
        {
            Isotun.Security.PasswordFile.RemoveUser(L.PasswordFile, "rita");
            Run.Exec(TestEnvironment.IsotunExe, ["reload", "--config", lab.ConfigPath]);
        }
    }

    private static void AssertLogsOff(BackgroundProcess oc)
    {
        oc.Signal("TERM");
        Assert.True(oc.WaitForExit(TimeSpan.FromSeconds(15)), "openconnect did not exit on SIGTERM: " + oc);
        Assert.Contains("Send BYE packet", oc.Output);
    }
}
