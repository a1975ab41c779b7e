using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;
using Xunit.Abstractions;

namespace Isotun.Integration.Interop;

/// <summary>`isotun connect` against a stock Debian ocserv 1.1.x, for real: separate processes in namespaces, a kernel TUN.</summary>
[Collection(OcservLabCollection.Name)]
public sealed class IsotunToOcservTests(OcservLab lab, ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Up = TimeSpan.FromSeconds(30);
    private LabLayout L => lab.Layout;

    // Each client tells its READY=1 here, as it tells systemd: its TUN is then up and routed and a connection takes
    // packets. An address on the TUN comes before that, and a ping sent at once was lost (once in a CI run).
    private readonly Dictionary<string, NotifySocket> _ready = [];

    public void Dispose()
    {
        foreach (var socket in _ready.Values) socket.Dispose();
    }

    [SkippableFact]
    public void Password_login_through_ocservs_form_steps_pings_and_moves_100_MB_byte_identical()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var client = Connect("ocs-pass", ["--user", LabLayout.User, "--password-file", lab.PasswordPath, "--authgroup", LabLayout.Tenant]);
        var address = WaitForAddress(client, "ocs-pass");

        Traffic.AssertPing(L.ClientNs, lab.Gateway);
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        Traffic.AssertPing(L.ServiceNs, address);
        Traffic.AssertTransfer(L.ClientNs, L.ServiceIp, seed: 6);

        AssertLogsOff(client);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => lab.OcservLog.Contains("received BYE packet")), "ocserv did not get the BYE:\n" + Tail());
    }

    [SkippableFact]
    public void Certificate_login_pings_and_moves_100_MB_byte_identical()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var client = Connect("ocs-cert", ["--certificate", lab.CertificatePath, "--sslkey", lab.KeyPath, "--authgroup", LabLayout.Tenant]);
        var address = WaitForAddress(client, "ocs-cert");

        Traffic.AssertPing(L.ClientNs, lab.Gateway);
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        Traffic.AssertPing(L.ServiceNs, address);
        Traffic.AssertTransfer(L.ClientNs, L.ServiceIp, seed: 7);
        AssertLogsOff(client);
        Assert.Contains("using 'certificate' authentication", lab.OcservLog);
    }

    [SkippableFact]
    public void A_lost_connection_is_resumed_with_the_cookie_and_the_same_address()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        using var client = Connect("ocs-resume", ["--user", LabLayout.User, "--password-file", lab.PasswordPath, "--authgroup", LabLayout.Tenant]);
        var address = WaitForAddress(client, "ocs-resume");

        var kill = Run.InNs(L.ClientNs, "ss", "-K", "dst", L.ServerIp.ToString(), "dport", "=", ":443");
        Assert.True(kill.ExitCode == 0, kill.ToString());
        Assert.True(client.WaitForOutput("reconnected with the same address", Up), "isotun connect did not resume: " + client);
        Assert.Equal(address, Traffic.TunAddress(L.ClientNs, "ocs-resume"));
        Traffic.AssertPing(L.ClientNs, L.ServiceIp);
        AssertLogsOff(client);
    }

    [SkippableFact]
    public void After_logging_off_ocserv_refuses_the_cookie()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var auth = Run.Isotun(L.ClientNs, ["connect", lab.Url, "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin",
            "--authgroup", LabLayout.Tenant, "--servercert", lab.Pin], stdin: File.ReadAllText(lab.PasswordPath));
        Assert.True(auth.ExitCode == 0, auth.ToString());
        var cookie = auth.Cookie();

        string[] withCookie = ["connect", lab.Url, "--cookie-on-stdin", "--servercert", lab.Pin, "--interface", "ocs-bye"];
        using (var client = BackgroundProcess.StartInNs(L.ClientNs, TestEnvironment.IsotunExe, withCookie, stdin: cookie + "\n"))
        {
            WaitForAddress(client, "ocs-bye");
            AssertLogsOff(client);
        }
        var again = Run.Isotun(L.ClientNs, withCookie, stdin: cookie + "\n", timeoutSeconds: 60);
        Assert.True(again.ExitCode == 4, again.ToString());
        Assert.Contains("rejected the session cookie", again.Stderr);
    }

    [SkippableFact]
    public void A_wrong_password_is_refused_at_once_with_ocservs_message()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        var r = Run.Isotun(L.ClientNs, ["connect", lab.Url, "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin",
            "--authgroup", LabLayout.Tenant, "--servercert", lab.Pin], stdin: "not-the-password\n", timeoutSeconds: 60);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("login refused by the server: Login failed.", r.Stderr);
        Assert.DoesNotContain("COOKIE=", r.Stdout);
    }

    private BackgroundProcess Connect(string device, string[] credentials)
    {
        var ready = _ready[device] = new NotifySocket(Path.Combine(Path.GetTempPath(), $"isotun-ocs-{Environment.ProcessId}-{device}.notify"));
        return BackgroundProcess.StartInNs(L.ClientNs, TestEnvironment.IsotunExe,
            ["connect", lab.Url, .. credentials, "--servercert", lab.Pin, "--interface", device],
            environment: new Dictionary<string, string> { ["NOTIFY_SOCKET"] = ready.Path });
    }

    /// <summary>Waits for the client's READY=1 when it was started by <see cref="Connect"/>, then for the TUN's address.</summary>
    private IPAddress WaitForAddress(BackgroundProcess client, string device)
    {
        if (_ready.TryGetValue(device, out var ready))
            Assert.True(client.WaitFor(() => ready.ReadyWithin(TimeSpan.FromMilliseconds(200)), Up),
                $"{device}: the client did not report the tunnel ready: {client}\nocserv:\n{Tail()}");
        IPAddress? address = null;
        Assert.True(client.WaitFor(() => (address = Traffic.TunAddress(L.ClientNs, device)) is not null, Up),
            $"no address on {device}: {client}\nocserv:\n{Tail()}");
        Assert.True(Traffic.InPool(address!, L.Pool), $"address {address} is not from ocserv's pool {L.Pool}");
        return address!;
    }

    private void AssertLogsOff(BackgroundProcess client)
    {
        client.Signal("TERM");
        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(15)), "isotun connect did not exit on SIGTERM: " + client);
        output.WriteLine(client.ToString());
        Assert.True(client.ExitCode == 0, "isotun connect did not log off cleanly: " + client);
    }

    private string Tail() => LabProcess.Tail(L, "ocserv", 30);
}
