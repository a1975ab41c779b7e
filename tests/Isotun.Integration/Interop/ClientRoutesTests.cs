using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>
/// The routes `isotun connect` sets keep its own connection outside the tunnel: a tenant that pushes a route taking
/// in the server's own address (here the address itself) leaves the server reached over the underlay, and the tunnel
/// stays up past its dead-peer time instead of swallowing its own TLS connection.
/// </summary>
[Collection(IsotunServerLabCollection.Name)]
public sealed class ClientRoutesTests(IsotunServerLab lab)
{
    private LabLayout L => lab.Layout;

    /// <summary>`isotun connect` to the wide tenant on <paramref name="device"/>, once it reports the tunnel ready.</summary>
    private BackgroundProcess ConnectWide(string device)
    {
        using var ready = new NotifySocket(Path.Combine(Path.GetTempPath(), $"isotun-oc-{Environment.ProcessId}-{device}.notify"));
        var client = BackgroundProcess.StartInNs(L.ClientNs, TestEnvironment.IsotunExe,
            ["connect", $"https://{L.ServerIp}/", "--user", LabLayout.User, "--password-file", L.UserPasswordPath,
             "--authgroup", IsotunServerLab.WideTenant, "--servercert", lab.Pin, "--interface", device],
            environment: new Dictionary<string, string> { [SystemdNotify.Variable] = ready.Path });
        if (!client.WaitFor(() => ready.ReadyWithin(TimeSpan.FromMilliseconds(200)), TimeSpan.FromSeconds(30)))
        {
            client.Dispose();
            Assert.Fail("isotun connect did not report the tunnel ready: " + client);
        }
        return client;
    }

    [SkippableFact]
    public void A_pushed_route_over_the_servers_own_address_leaves_the_server_on_the_underlay()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        const string device = "it-wide";
        using var client = ConnectWide(device);

        // The pushed /32 is in the table, and yet the server goes over the underlay.
        var route = Run.InNs(L.ClientNs, "ip", "-4", "route", "get", L.ServerIp.ToString()).Stdout;
        Assert.DoesNotContain($"dev {device}", route);
        Assert.Contains($"{IsotunServerLab.WidePool} dev {device}", Run.InNs(L.ClientNs, "ip", "-4", "route").Stdout);
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.WideGateway);

        // Past twice the tenant's DPD the connection is the same one: nothing was lost, nothing reconnected.
        Thread.Sleep(TimeSpan.FromSeconds(2 * IsotunServerLab.QuickDpd + 2));
        Assert.DoesNotContain("connection lost", client.Output);
        Traffic.AssertPing(L.ClientNs, IsotunServerLab.WideGateway);
        client.Signal("TERM");
        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(15)) && client.ExitCode == 0, "isotun connect did not log off cleanly: " + client);
    }

    /// <summary>
    /// A pushed route for a prefix the host routes already (its LAN, a container bridge) takes that route's place while
    /// the tunnel is up, and the host's route is back once the client has gone.
    /// </summary>
    [SkippableFact]
    public void A_host_route_the_tunnel_took_over_is_put_back_when_the_client_ends()
    {
        Skip.If(lab.SkipReason is not null, lab.SkipReason);
        const string device = "it-take", lan = "it-lan0";
        IpCommand.RunIn(L.ClientNs, "link", "add", lan, "type", "veth", "peer", "name", "it-lan1");
        try
        {
            IpCommand.RunIn(L.ClientNs, "link", "set", lan, "up");
            IpCommand.RunIn(L.ClientNs, "route", "add", IsotunServerLab.WidePool, "dev", lan);
            using var client = ConnectWide(device);
            var during = Run.InNs(L.ClientNs, "ip", "-4", "route", "show", "exact", IsotunServerLab.WidePool).Stdout;
            Assert.Contains($"dev {device}", during);
            Assert.DoesNotContain($"dev {lan}", during);

            client.Signal("TERM");
            Assert.True(client.WaitForExit(TimeSpan.FromSeconds(15)) && client.ExitCode == 0, "isotun connect did not log off cleanly: " + client);
            var after = Run.InNs(L.ClientNs, "ip", "-4", "route", "show", "exact", IsotunServerLab.WidePool).Stdout;
            Assert.Contains($"dev {lan}", after);
        }
        finally
        {
            IpCommand.TryRun("-n", L.ClientNs, "link", "del", lan);
        }
    }
}
