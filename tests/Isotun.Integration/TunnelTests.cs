using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration;

/// <summary>The core server and client, for real: namespaces, veth underlay, TUN devices, separate processes.</summary>
[Collection(LabCollection.Name)]
public sealed class TunnelTests(LabFixture lab)
{
    private LabLayout L => lab.Layout;

    [SkippableFact]
    public void Ping_works_both_ways_through_the_tunnel()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var address = lab.Lab!.ClientAddress();
        Assert.NotNull(address);
        Assert.True(L.Pool.StartsWith("10.10.0.") && address!.ToString().StartsWith("10.10.0."), $"address {address} not from the pool");

        AssertPing(L.ClientNs, L.TunnelGateway);
        AssertPing(L.ClientNs, L.ServiceIp);
        AssertPing(L.ServiceNs, address);   // the service host, through the tenant namespace and the tunnel
        Assert.Equal(L.ServiceText, lab.Lab.FetchServiceText());
    }

    [SkippableFact]
    public void The_server_runs_with_its_small_gen0_budget_under_the_pid_it_was_started_with()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        // The lab starts the server with no runtime variables; it re-executes itself with the budget, in place.
        int pid = LabProcess.Pid(L, "server") ?? throw new InvalidOperationException("no server PID file");
        var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
        Assert.Contains("DOTNET_GCgen0size=0x400000", environment);
        Assert.Equal(["server", "--config", L.ConfigPath], File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Split('\0')[1..]);
        // Nothing of the first image's signal state is carried over: it ignores SIGPIPE, as any .NET process does, and
        // what its starter ignored (a shell's background job ignores SIGINT and SIGQUIT), but not SIGHUP, its reload.
        var status = File.ReadAllLines($"/proc/{pid}/status");
        Assert.Contains("SigBlk:\t0000000000000000", status);
        const ulong sighup = 1, sigpipe = 1 << 12;
        ulong inherited = Ignored(File.ReadAllLines("/proc/self/status"));
        Assert.Equal(((inherited | sigpipe) & ~sighup).ToString("x16"), Ignored(status).ToString("x16"));

        static ulong Ignored(string[] status) =>
            Convert.ToUInt64(status.Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))["SigIgn:".Length..].Trim(), 16);
    }

    [SkippableFact]
    public void A_200_MB_transfer_arrives_byte_identical()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        const long total = 200L * 1024 * 1024;
        var (sentHash, reply) = SendToSink(total);
        Assert.Equal($"{sentHash} {total}", reply);
    }

    [SkippableFact]
    public void The_doctor_reads_the_servers_metrics_and_tells_how_the_tenants_traffic_crosses()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        SendToSink(32L * 1024 * 1024);
        var doctor = Run.Isotun(L.ServerNs, ["doctor", "--metrics", $"http://127.0.0.1:{LabLayout.AdminPort}/metrics"]);
        Assert.True(doctor.ExitCode is 0 or 3, doctor.ToString());
        var server = doctor.Stdout.Split('\n').Where(l => l.StartsWith("server ", StringComparison.Ordinal)).ToList();
        Assert.Contains(server, l => l.Contains($" {LabLayout.Tenant} from clients: ", StringComparison.Ordinal) && l.Contains(" bytes each", StringComparison.Ordinal));
        Assert.DoesNotContain(server, l => l.Contains("cannot read", StringComparison.Ordinal));
    }

    /// <summary>Sends <paramref name="total"/> random bytes from the client host to the service's SHA-256 sink; its hash and the sink's reply.</summary>
    private (string Hash, string Reply) SendToSink(long total) =>
        NetworkNamespace.Run(L.ClientNs, () =>
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 120_000, SendTimeout = 120_000 };
            s.Connect(new IPEndPoint(L.ServiceIp, LabLayout.SinkPort));
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buf = new byte[64 * 1024];
            var rng = new Random(20261130);
            for (long sent = 0; sent < total; sent += buf.Length)
            {
                rng.NextBytes(buf);
                sha.AppendData(buf);
                int off = 0;
                while (off < buf.Length) off += s.Send(buf, off, buf.Length - off, SocketFlags.None);
            }
            s.Shutdown(SocketShutdown.Send);
            var r = new byte[256];
            int n = 0, k;
            while ((k = s.Receive(r, n, r.Length - n, SocketFlags.None)) > 0) n += k;
            return (Convert.ToHexStringLower(sha.GetHashAndReset()), Encoding.ASCII.GetString(r, 0, n).Trim());
        });

    [SkippableFact]
    public void Killing_the_TCP_connection_makes_the_client_reconnect_with_the_same_address()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var before = lab.Lab!.ClientAddress();
        Assert.NotNull(before);
        int reconnectsBefore = CountInLog("client", "reconnected with the same address");

        var kill = Run.InNs(L.ClientNs, "ss", "-K", "dst", L.ServerIp.ToString(), "dport", "=", ":443");
        Assert.True(kill.ExitCode == 0, kill.ToString());

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => CountInLog("client", "reconnected with the same address") > reconnectsBefore),
            "client did not reconnect:\n" + LabProcess.Tail(L, "client"));
        Assert.Equal(before, lab.Lab.ClientAddress());
        AssertPing(L.ClientNs, L.ServiceIp);
        AssertPing(L.ServiceNs, before!);
    }

    [SkippableFact]
    public void After_ctrl_c_the_cookie_no_longer_works()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var cookie = LogIn();

        // A second client process on its own TUN, using that cookie. It starts with SIGINT ignored, as a
        // non-interactive shell starts `isotun connect &`: Ctrl-C's signal must still log it off.
        using var client = new CookieClient(L.ClientNs, L.ServerUrl, lab.Pin, cookie, "isotun9");
        client.WaitForAddress();
        client.StopWithSigint();

        AssertCookieRefused(L.ClientNs, cookie, client);
    }

    [SkippableFact]
    public void Ctrl_c_while_reconnecting_still_logs_the_session_off()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var cookie = LogIn();

        // A host of its own (a namespace with a veth to the server host), so that cutting its way to the server
        // leaves the lab's client alone.
        string ns = $"isotun-{L.Tag}-cli2", near = $"{L.Tag}-c2", far = $"{L.Tag}-s2", net = $"198.19.{L.Index}";
        IpCommand.TryRun("netns", "del", ns);
        IpCommand.Run("netns", "add", ns);
        try
        {
            IpCommand.Run("link", "add", near, "type", "veth", "peer", "name", far);
            IpCommand.Run("link", "set", near, "netns", ns);
            IpCommand.Run("link", "set", far, "netns", L.ServerNs);
            IpCommand.RunIn(ns, "addr", "add", $"{net}.2/24", "dev", near);
            IpCommand.RunIn(L.ServerNs, "addr", "add", $"{net}.1/24", "dev", far);
            IpCommand.RunIn(ns, "link", "set", near, "up");
            IpCommand.RunIn(L.ServerNs, "link", "set", far, "up");
            IpCommand.RunIn(ns, "route", "add", $"{L.ServerIp}/32", "via", $"{net}.1");

            using var client = new CookieClient(ns, L.ServerUrl, lab.Pin, cookie, "isotun8");
            client.WaitForAddress();

            // The way to the server goes, and the connection with it: the client retries after 1, 2, 4… s.
            IpCommand.RunIn(ns, "route", "replace", "prohibit", $"{L.ServerIp}/32");
            var kill = Run.InNs(ns, "ss", "-K", "dst", L.ServerIp.ToString(), "dport", "=", ":443");
            Assert.True(kill.ExitCode == 0, kill.ToString());
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => client.Output.Contains("retrying in 4 s")),
                "the client did not go on retrying:\n" + client.Output);

            // The way comes back while the client waits to retry, and Ctrl-C comes at once: it logs off on a
            // connection of its own.
            IpCommand.RunIn(ns, "route", "replace", $"{L.ServerIp}/32", "via", $"{net}.1");
            client.StopWithSigint();
            Assert.Contains("disconnected (session logged off)", client.Output);

            AssertCookieRefused(ns, cookie, client);
        }
        finally
        {
            IpCommand.TryRun("netns", "del", ns); // takes the veth pair with it
        }
    }

    private string LogIn()
    {
        var auth = Run.Isotun(L.ClientNs, ["connect", L.ServerUrl.ToString(), "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin", "--servercert", lab.Pin], stdin: lab.Password + "\n");
        Assert.True(auth.ExitCode == 0, auth.ToString());
        return auth.Cookie();
    }

    private void AssertCookieRefused(string ns, string cookie, CookieClient before)
    {
        var again = Run.Isotun(ns, ["connect", L.ServerUrl.ToString(), "--cookie-on-stdin", "--servercert", lab.Pin, "--interface", "isotun9", "--no-routes"], stdin: cookie + "\n", timeoutSeconds: 30);
        Assert.True(again.ExitCode == 4, $"{again}\nthe first client said:\n{before.Output}\nthe server:\n{LabProcess.Tail(L, "server")}");
        Assert.Contains("rejected the session cookie", again.Stderr);
    }

    /// <summary>
    /// `isotun connect --cookie-on-stdin` in a namespace, on its own TUN, started with SIGINT ignored (as a
    /// non-interactive shell starts a background job); its output is gathered as it comes.
    /// </summary>
    private sealed class CookieClient : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly string _ns, _device;

        public CookieClient(string ns, Uri server, string pin, string cookie, string device)
        {
            (_ns, _device) = (ns, device);
            var psi = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in (string[])["netns", "exec", ns, "env", "--ignore-signal=INT", TestEnvironment.IsotunExe, "connect", server.ToString(), "--cookie-on-stdin", "--servercert", pin, "--interface", device, "--no-routes", "--verbose"])
                psi.ArgumentList.Add(a);
            _process = new Process { StartInfo = psi };
            _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            _process.Start();
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            _process.StandardInput.WriteLine(cookie);
            _process.StandardInput.Close();
        }

        public string Output { get { lock (_output) return _output.ToString(); } }

        public void WaitForAddress() =>
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => Run.Exec("ip", ["-n", _ns, "-4", "-o", "addr", "show", "dev", _device]).Stdout.Contains("inet ")),
                "the cookie client never got an address:\n" + Output);

        /// <summary>SIGINT, then it must exit with 0 within 15 s.</summary>
        public void StopWithSigint()
        {
            LabProcess.Signal(_process.Id, "INT");
            if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
            {
                _process.Kill();
                _process.WaitForExit();
                Assert.Fail("the client did not exit on SIGINT; its output:\n" + Output);
            }
            _process.WaitForExit(); // drains the output
            Assert.True(_process.ExitCode == 0, $"exit {_process.ExitCode}:\n{Output}");
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.Dispose();
        }
    }

    [SkippableFact]
    public void Wrong_password_and_unknown_user_are_refused_clearly_and_counted()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        double badBefore = Metric("isotun_auth_attempts_total", "result=\"bad-password\"");
        double unknownBefore = Metric("isotun_auth_attempts_total", "result=\"unknown-user\"");

        var wrong = Run.Isotun(L.ClientNs, ["connect", L.ServerUrl.ToString(), "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin", "--servercert", lab.Pin], stdin: "not-the-password\n");
        Assert.True(wrong.ExitCode == 3, wrong.ToString());
        Assert.Contains("login refused", wrong.Stderr);

        // A name that is no user may be a password typed into the wrong field: the server's log does not show it.
        const string typedPassword = "Winter-2026-unknown";
        var unknown = Run.Isotun(L.ClientNs, ["connect", L.ServerUrl.ToString(), "--authenticate", "--user", typedPassword, "--passwd-on-stdin", "--servercert", lab.Pin], stdin: "whatever\n");
        Assert.True(unknown.ExitCode == 3, unknown.ToString());
        Assert.Contains("login refused", unknown.Stderr);
        // The refusal does not tell an unknown user from a wrong password.
        Assert.Equal(wrong.Stderr.Trim(), unknown.Stderr.Trim());
        var log = ProcessLogs.Once(L, "server", "login (unknown user): unknown-user");
        Assert.Contains("login (unknown user): unknown-user", log);
        Assert.Contains($"login {LabLayout.User}: bad-password", log);
        Assert.DoesNotContain(typedPassword, log);

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () =>
            Metric("isotun_auth_attempts_total", "result=\"bad-password\"") >= badBefore + 1 &&
            Metric("isotun_auth_attempts_total", "result=\"unknown-user\"") >= unknownBefore + 1), "auth failures not counted:\n" + Scrape());
    }

    [SkippableFact]
    public void A_wrong_pin_is_refused_by_the_client()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var r = Run.Isotun(L.ClientNs, ["connect", L.ServerUrl.ToString(), "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin",
            "--servercert", "pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="], stdin: lab.Password + "\n");
        Assert.True(r.ExitCode == 6, r.ToString());
        Assert.Contains("does not match the pin", r.Stderr);
    }

    internal static void AssertPing(string ns, IPAddress target)
    {
        var r = Run.InNs(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", target.ToString());
        Assert.True(r.ExitCode == 0, $"ping {target} from {ns} failed: {r}");
    }


    private int CountInLog(string name, string text)
    {
        var path = LabProcess.LogPath(L, name);
        return File.Exists(path) ? File.ReadAllLines(path).Count(l => l.Contains(text)) : 0;
    }

    private string Scrape() => ServerMetrics.Scrape(L.ServerNs);

    private double Metric(string name, string labelFilter) => ServerMetrics.Sum(Scrape(), name, labelFilter);
}
