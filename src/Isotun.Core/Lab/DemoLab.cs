using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Security;

namespace Isotun.Lab;

/// <summary>
/// `isotun lab up|down|status`: a whole demo on one machine. A client host and a server host on a veth
/// underlay; the server puts tenant "demo" in its own namespace with an uplink veth into a service host;
/// the server and client are started, and traffic is shown flowing.
/// Integration tests build their own labs with this same class.
/// </summary>
public sealed class DemoLab(LabLayout layout, string isotunExe, Action<string> say)
{
    public LabLayout Layout => layout;

    /// <summary>The programs the lab runs, each with the Debian package that provides it. Nothing else is needed.</summary>
    private static readonly (string Program, string Package)[] Prerequisites =
        [("ip", "iproute2"), ("ss", "iproute2"), ("nsenter", "util-linux"), ("setsid", "util-linux")];

    public static string? Preflight()
    {
        if (Libc.geteuid() != 0) return "the lab needs root (network namespaces, veth, TUN): run it with sudo";
        if (!File.Exists("/dev/net/tun")) return "/dev/net/tun is missing: load the tun module (modprobe tun)";
        var missing = Prerequisites.Where(p => !OnPath(p.Program)).ToList();
        if (missing.Count > 0)
            return "missing: " + string.Join(", ", missing.Select(p => $"`{p.Program}` (Debian package {p.Package})"))
                + $"; install with: apt-get install {string.Join(' ', missing.Select(p => p.Package).Distinct())}";
        return null;
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    public bool IsUp => layout.Namespaces.Any(NetworkNamespace.Exists);

    /// <summary>The file that marks a directory as the lab's own: `down` deletes no directory without it.</summary>
    public string MarkerPath => Path.Combine(layout.Directory, ".isotun-lab");

    /// <summary>The directory has the lab's marker, or (a lab of a version before the marker) the lab's server.yaml.</summary>
    private bool MadeByLab()
    {
        if (File.Exists(MarkerPath)) return true;
        try
        {
            return File.Exists(layout.ConfigPath) && File.ReadLines(layout.ConfigPath).FirstOrDefault() == ConfigHeader;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private const string ConfigHeader = "# Written by `isotun lab up`. See docs/configuration.md.";

    /// <summary>
    /// Builds the topology and the files, starts service, server and client, and shows traffic. Stopped by
    /// <paramref name="cancel"/> (Ctrl-C) or by a failure, it takes down what it made, keeping the logs.
    /// </summary>
    public void Up(TimeSpan timeout, CancellationToken cancel = default)
    {
        if (IsUp) throw new InvalidOperationException($"lab '{layout.Tag}' is already up (namespaces {string.Join(", ", layout.Namespaces.Where(NetworkNamespace.Exists))}); run `isotun lab down` first");
        // The lab writes a CA, keys and a config into its directory, and `down` deletes it: never one that holds
        // something else (a --dir typo, or the directory of a real deployment).
        if (Directory.Exists(layout.Directory) && Directory.EnumerateFileSystemEntries(layout.Directory).Any() && !MadeByLab())
            throw new InvalidOperationException($"{layout.Directory} is not empty and was not made by `isotun lab up`: give --dir a new or empty directory");
        try
        {
            say("building namespaces and veth underlay");
            BuildTopology();
            cancel.ThrowIfCancellationRequested();
            say("writing PKI, users and server config to " + layout.Directory);
            var pin = WriteFiles();
            using var ready = new NotifySocket(NotifyPath());
            StartProcesses(pin, ready.Path, cancel);
            say("waiting for the client to report the tunnel ready");
            var address = WaitForReady(ready, timeout, cancel);
            say($"client {LabLayout.User}@{LabLayout.Tenant} got {address} on {LabLayout.ClientTun}");
            cancel.ThrowIfCancellationRequested();
            ShowTraffic(address);
        }
        catch (Exception e)
        {
            say((e is OperationCanceledException ? "lab up interrupted" : "lab up failed") + "; cleaning up (logs kept in " + layout.LogDir + ")");
            Down(keepFiles: true);
            if (e is OperationCanceledException) throw new InvalidOperationException("lab up interrupted; everything it made is removed");
            throw;
        }
    }

    private void BuildTopology()
    {
        foreach (var ns in layout.Namespaces)
        {
            IpCommand.Run("netns", "add", ns);
            IpCommand.RunIn(ns, "link", "set", "lo", "up");
        }
        Veth(layout.ClientUplink, layout.ClientNs, layout.ClientIp, layout.ServerDownlink, layout.ServerNs, layout.ServerIp);
        // The service host is reached through the tenant's own namespace: the server creates that
        // namespace and its uplink veth into the service host (see the tenant's `uplink` in server.yaml).
    }

    private static void Veth(string a, string nsA, IPAddress ipA, string b, string nsB, IPAddress ipB)
    {
        IpCommand.Run("link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB);
        IpCommand.RunIn(nsA, "addr", "add", $"{ipA}/24", "dev", a);
        IpCommand.RunIn(nsB, "addr", "add", $"{ipB}/24", "dev", b);
        IpCommand.RunIn(nsA, "link", "set", a, "up");
        IpCommand.RunIn(nsB, "link", "set", b, "up");
    }

    private string WriteFiles()
    {
        Directory.CreateDirectory(layout.Directory);
        File.WriteAllText(MarkerPath, "made by `isotun lab up`; `isotun lab down` deletes this directory\n");
        var pki = new PkiDirectory(layout.PkiDir);
        pki.InitCa(force: true);
        var server = pki.IssueServer("server", [layout.ServerIp], [], force: true);
        pki.IssueClient(LabLayout.Tenant, LabLayout.User, force: true);

        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('+', '-').Replace('/', '_');
        SecretFile.WriteAllText(layout.UserPasswordPath, password + "\n", overwrite: true);
        PasswordFile.SetUser(layout.PasswordFile, LabLayout.User, PasswordHasher.Hash(password));

        File.WriteAllText(layout.ConfigPath, $"""
            {ConfigHeader}
            listen: {layout.ServerIp}:443
            tls:
              certificate: pki/server.crt
              key: pki/server.key
              client-ca: pki/ca.crt
              ticket-key-file: ticket.key
            admin:
              listen: 127.0.0.1:{LabLayout.AdminPort}
            state: isotun.db
            cookie:
              key-file: cookie.key
              lifetime: 3600
            limits:
              handshake-timeout: 5
              auth-timeout: 15
            tenants:
              - name: {LabLayout.Tenant}
                namespace: {layout.TenantNs}
                pool: {layout.Pool}
                pool6: {layout.Pool6}
                routes: [{layout.ServiceNet}]
                dns: [{layout.TunnelGateway}]
                mtu: 1400
                queues: 2
                dpd: 30
                keepalive: 20
                password-file: users.passwd
                client-to-client: false
                uplink:
                  veth:
                    peer-namespace: {layout.ServiceNs}
                    name: uplink0
                    peer-name: {layout.ServiceLink}
                    address: {layout.ServerServiceIp}/24
                    peer-address: {layout.ServiceIp}/24
            """);
        File.WriteAllText(Path.Combine(layout.Directory, "server.pin"), server.Pin + "\n");
        return server.Pin;
    }

    /// <summary>Where the client reports READY=1: in the lab's directory, unless that path is too long for a unix socket.</summary>
    private string NotifyPath()
    {
        var path = Path.Combine(layout.Directory, "client.notify");
        return path.Length <= 100 ? path : Path.Combine(Path.GetTempPath(), $"isotun-{layout.Tag}-client.notify");
    }

    private void StartProcesses(string pin, string notifySocket, CancellationToken cancel)
    {
        say($"starting service in {layout.ServiceNs} ({layout.ServiceIp}:{LabLayout.ServicePort})");
        LabProcess.Start(layout, "service", layout.ServiceNs, isotunExe,
            ["lab", "serve", "--text", layout.ServiceText, "--port", LabLayout.ServicePort.ToString(), "--sink-port", LabLayout.SinkPort.ToString()]);
        say($"starting server in {layout.ServerNs} ({layout.ServerIp}:443)");
        LabProcess.Start(layout, "server", layout.ServerNs, isotunExe, ["server", "--config", layout.ConfigPath]);
        // Both listening before the client comes: the traffic shown at the end fetches from the service.
        WaitFor(TimeSpan.FromSeconds(30), () => Listening(layout.ServiceNs, LabLayout.ServicePort) && Listening(layout.ServiceNs, LabLayout.SinkPort), "the service to listen", "service", cancel);
        WaitFor(TimeSpan.FromSeconds(30), () => Listening(layout.ServerNs, 443), "server to listen", "server", cancel);
        say($"starting client in {layout.ClientNs}");
        LabProcess.Start(layout, "client", layout.ClientNs, isotunExe, ClientArgs(pin), stdinFile: null,
            environment: new Dictionary<string, string> { [SystemdNotify.Variable] = notifySocket });
    }

    public string[] ClientArgs(string pin) =>
        ["connect", layout.ServerUrl.ToString(), "--user", LabLayout.User, "--password-file", layout.UserPasswordPath,
         "--servercert", pin, "--interface", LabLayout.ClientTun, "--queues", "2"];

    /// <summary>
    /// Waits for the client's READY=1: its TUN has the address, is up and routed, and a connection takes packets. An
    /// address on the TUN alone comes earlier than that, and a ping sent then may be lost.
    /// </summary>
    private IPAddress WaitForReady(NotifySocket ready, TimeSpan timeout, CancellationToken cancel)
    {
        string? status = null;
        WaitFor(timeout, () =>
        {
            var message = ready.Receive(TimeSpan.FromMilliseconds(200));
            if (message is null || !message.TryGetValue("READY", out var r) || r != "1") return false;
            status = message.GetValueOrDefault("STATUS");
            return true;
        }, "the client to report the tunnel ready", "client", cancel);
        return ClientAddress() ?? throw new InvalidOperationException($"the client reported ready ({status}) but {LabLayout.ClientTun} has no IPv4 address");
    }

    /// <summary>The address on the client's TUN, or null while the tunnel is not up.</summary>
    public IPAddress? ClientAddress()
    {
        var (code, output, _) = IpCommand.Exec("ip", ["-n", layout.ClientNs, "-4", "-o", "addr", "show", "dev", LabLayout.ClientTun], check: false);
        if (code != 0) return null;
        var parts = output.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = Array.IndexOf(parts, "inet");
        return i >= 0 && i + 1 < parts.Length && IPAddress.TryParse(parts[i + 1].Split('/')[0], out var a) ? a : null;
    }

    /// <summary>`isotun lab check`: the pings and the fetch of `up` again, on a lab that is up.</summary>
    public void Check()
    {
        if (!IsUp) throw new InvalidOperationException($"lab '{layout.Tag}' is not up; run `isotun lab up` first");
        var address = ClientAddress() ?? throw new InvalidOperationException($"the client has no address on {LabLayout.ClientTun}; see {LabProcess.LogPath(layout, "client")}");
        ShowTraffic(address);
    }

    private void ShowTraffic(IPAddress clientAddress)
    {
        Ping(layout.ClientNs, layout.TunnelGateway, "client → server tunnel gateway");
        Ping(layout.ClientNs, layout.ServiceIp, "client → service through the tunnel");
        Ping(layout.ServiceNs, clientAddress, "service → client through the tunnel");
        Ping(layout.ClientNs, layout.TunnelGateway6, "client → server over IPv6 in the tunnel");
        string text;
        try
        {
            text = FetchServiceText();
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"fetch from the service ({layout.ServiceIp}:{LabLayout.ServicePort}) through the tunnel failed: {e.Message}");
        }
        say($"client fetched from {layout.ServiceIp}:{LabLayout.ServicePort} through the tunnel: \"{text}\"");
    }

    /// <summary>Three echoes from inside <paramref name="ns"/>, by isotun itself (no `ping` needed); fails with the reason.</summary>
    private void Ping(string ns, IPAddress target, string what)
    {
        var result = Pinger.Ping(ns, target, count: 3, interval: TimeSpan.FromMilliseconds(200), wait: TimeSpan.FromSeconds(2));
        if (!result.Success) throw new InvalidOperationException($"ping {what} ({target}) failed: {result}");
        say($"ping {what} ({target}): {result}");
    }

    public string FetchServiceText() => NetworkNamespace.Run(layout.ClientNs, () =>
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 5000 };
        s.Connect(new IPEndPoint(layout.ServiceIp, LabLayout.ServicePort));
        var buf = new byte[256];
        int n = s.Receive(buf);
        return Encoding.UTF8.GetString(buf, 0, n).Trim();
    });

    /// <summary>Whether anything in <paramref name="ns"/> listens on TCP <paramref name="port"/>, on any address.</summary>
    public static bool Listening(string ns, int port) => Ss(ns, $"sport = :{port}");

    /// <summary>
    /// Whether something listens on exactly <paramref name="at"/>: where several processes share a port on different
    /// addresses, the port alone says only that one of them is up.
    /// </summary>
    public static bool Listening(string ns, IPEndPoint at) =>
        Ss(ns, at.AddressFamily == AddressFamily.InterNetworkV6 ? $"src [{at.Address}]:{at.Port}" : $"src {at}");

    private static bool Ss(string ns, string filter)
    {
        var (_, output, _) = IpCommand.Exec("ip", ["netns", "exec", ns, "ss", "-Htln", filter], check: false);
        return output.Trim().Length > 0;
    }

    private void WaitFor(TimeSpan timeout, Func<bool> done, string what, string logName, CancellationToken cancel)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            cancel.ThrowIfCancellationRequested();
            if (done()) return;
            if (LabProcess.Pid(layout, logName) is int pid && !LabProcess.IsAlive(pid))
                throw new InvalidOperationException($"{logName} exited while waiting for {what}:\n{LabProcess.Tail(layout, logName)}");
            Thread.Sleep(200);
        }
        throw new TimeoutException($"timed out waiting for {what}:\n{LabProcess.Tail(layout, logName)}");
    }

    /// <summary>
    /// Stops the processes (client first, so it logs off), removes the namespaces and, unless kept, the files. A
    /// process still in one of the lab's namespaces (one whose pid file is elsewhere: a lab brought up with another
    /// --dir, or from another directory) is stopped too, by its PID, before its namespace goes. A directory without
    /// the lab's marker is left in place.
    /// </summary>
    public void Down(bool keepFiles)
    {
        foreach (var name in new[] { "client", "server", "service" })
            LabProcess.Stop(layout, name, TimeSpan.FromSeconds(5));
        foreach (var ns in layout.Namespaces)
        {
            if (!NetworkNamespace.Exists(ns)) continue;
            StopProcessesIn(ns);
            IpCommand.TryRun("netns", "del", ns);
        }
        if (keepFiles || !Directory.Exists(layout.Directory)) return;
        if (MadeByLab()) Directory.Delete(layout.Directory, recursive: true);
        else say($"{layout.Directory} left in place: it was not made by `isotun lab up`");
    }

    /// <summary>Ends the processes that run in <paramref name="ns"/>, by PID: TERM, then KILL after 5 s.</summary>
    private static void StopProcessesIn(string ns)
    {
        static int[] Pids(string ns)
        {
            var (code, output, _) = IpCommand.Exec("ip", ["netns", "pids", ns], check: false);
            return code != 0 ? [] : [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => int.TryParse(p, out var pid) ? pid : 0).Where(pid => pid > 1 && pid != Environment.ProcessId)];
        }
        var pids = Pids(ns);
        if (pids.Length == 0) return;
        foreach (var pid in pids) LabProcess.Signal(pid, "TERM");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Pids(ns).Length > 0 && DateTime.UtcNow < until) Thread.Sleep(100);
        foreach (var pid in Pids(ns)) LabProcess.Signal(pid, "KILL");
    }

    public IReadOnlyList<(string What, string State)> Status()
    {
        var rows = new List<(string, string)>();
        foreach (var ns in layout.Namespaces) rows.Add(($"namespace {ns}", NetworkNamespace.Exists(ns) ? "present" : "absent"));
        foreach (var name in new[] { "service", "server", "client" })
        {
            var pid = LabProcess.Pid(layout, name);
            rows.Add(($"process {name}", pid is int p ? (LabProcess.IsAlive(p) ? $"running (pid {p})" : $"exited (pid {p}); see {LabProcess.LogPath(layout, name)}") : "not started"));
        }
        if (NetworkNamespace.Exists(layout.ClientNs))
            rows.Add(("client tunnel address", ClientAddress()?.ToString() ?? "none"));
        return rows;
    }
}
