using System.Net;
using System.Net.Sockets;
using Isotun.Gateway;
using Isotun.Gateway.Configuration;
using Isotun.Linux;
using Isotun.Server;
using Isotun.State;
using Isotun.UnitTests.Cli;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// What systemd (Type=notify) hears from the gateway and the server: READY=1 once listening, RELOADING=1 then
/// READY=1 around a reload (taken or refused), STOPPING=1 on stop. Runs alone: it sets $NOTIFY_SOCKET for the process.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ServiceNotifyTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly NotifySocket _socket;

    public ServiceNotifyTests()
    {
        _socket = new NotifySocket(_temp.File("notify.sock"));
        Environment.SetEnvironmentVariable(SystemdNotify.Variable, _socket.Path);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(SystemdNotify.Variable, null);
        _socket.Dispose();
        _temp.Dispose();
    }

    private IReadOnlyDictionary<string, string> Next()
    {
        var message = _socket.Receive(TimeSpan.FromSeconds(10));
        Assert.NotNull(message);
        return message;
    }

    [Fact]
    public async Task The_gateway_says_ready_reloading_ready_and_stopping()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var path = _temp.File("gateway.yaml");
        File.WriteAllText(path, $"""
            listen: 127.0.0.1:{port}
            admin:
              listen: off
            routes:
              - sni: "vpn.acme.example"
                passthrough:
                  backend: 127.0.0.1:9
            """);
        var loaded = GatewayConfigLoader.Load(path);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        using var stop = new CancellationTokenSource();
        await using var gateway = new EdgeGateway(loaded.Config!, NullLoggerFactory.Instance);
        var run = gateway.RunAsync(stop.Token);

        var ready = Next();
        Assert.Equal("1", ready["READY"]);
        Assert.Contains($"127.0.0.1:{port}", ready["STATUS"]);

        Assert.Empty(gateway.Reload());
        Assert.Equal("1", Next()["RELOADING"]);
        Assert.Equal("1", Next()["READY"]);

        File.WriteAllText(path, "listen: [nonsense");
        Assert.NotEmpty(gateway.Reload());
        Assert.Equal("1", Next()["RELOADING"]);
        var afterRefusal = Next();
        Assert.Equal("1", afterRefusal["READY"]);
        Assert.Contains("refused", afterRefusal["STATUS"]);

        stop.Cancel();
        await run;
        Assert.Equal("1", Next()["STOPPING"]);

        // A reload that comes after the stop began (a SIGHUP just before SIGTERM) tells systemd nothing more.
        gateway.Reload();
        Assert.Null(_socket.Receive(TimeSpan.FromMilliseconds(500)));
    }

    [Fact]
    public async Task The_server_says_reloading_then_ready_around_a_reload_once_it_listens()
    {
        // Not listening yet (a SIGHUP during the start): READY=1 would tell systemd the server is up.
        await using (var early = new VpnServer(FirstStartTests.Config(_temp), NullLoggerFactory.Instance, new MemoryStateStore()))
        {
            early.Reload();
            Assert.Null(_socket.Receive(TimeSpan.FromMilliseconds(500)));
        }

        using var pki = new InProcess.InProcessPki();
        await using var server = await InProcess.InProcessServer.StartAsync(pki);
        Assert.Equal("1", Next()["READY"]); // listening
        server.Server.Reload();
        Assert.Equal("1", Next()["RELOADING"]);
        var ready = Next();
        Assert.Equal("1", ready["READY"]);
        Assert.StartsWith("reload", ready["STATUS"]);
    }

    [Fact]
    public void The_reload_status_reads_as_one_line()
    {
        Assert.Equal("reload: nothing to apply", VpnServer.ReloadStatus([]));
        Assert.Equal("reload: tenant a: applied; tenant b: added", VpnServer.ReloadStatus(["tenant a: applied", "tenant b: added"]));
        Assert.Equal("reload: reload refused, 2 change(s) cannot be applied live; nothing was applied: listen changed: restart the server to apply",
            VpnServer.ReloadStatus(["reload refused, 2 change(s) cannot be applied live; nothing was applied:", "  listen changed: restart the server to apply"]));
        Assert.Equal("reload: refused: a; b", VpnServer.ReloadStatus(["refused:", "  a", "  b", "  c"]));
    }
}
