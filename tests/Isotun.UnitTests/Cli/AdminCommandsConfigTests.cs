using Isotun.Admin;
using Isotun.Server.Configuration;
using Isotun.UnitTests.InProcess;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// The admin commands find the server through <c>--config FILE</c>: only the file's admin settings need to be right.
/// An operator who is still fixing the rest of the file (the server runs on the config it has) reaches the server,
/// and is told that the file has errors; a file whose admin settings cannot be read says why.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class AdminCommandsConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly InProcessPki _pki = new();

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Status_reaches_the_server_through_a_file_with_errors_outside_its_admin_settings_and_warns()
    {
        await using var server = await InProcessServer.StartAsync(_pki);
        var socket = _dir.File("admin.sock");
        await using var api = await AdminApi.StartAsync(server.Server, new AdminConfig(null) { Socket = socket }, NullLoggerFactory.Instance);
        var config = _dir.File("edited.yaml");
        File.WriteAllText(config, $"""
            admin:
              listen: off
              socket: {socket}
            tenants:
              - name: acme
                pool: 10.0.0.0/33
                mtu: 20
            """);

        var status = await ConsoleCapture.RunAsync(_dir.Path, null, "status", "--config", config);

        Assert.True(status.ExitCode == 0, status.Error);
        Assert.StartsWith("version", status.Out); // the server's answer
        Assert.Contains("warning:", status.Error);
        int errors = ServerConfigLoader.Load(config).Errors.Count;
        Assert.True(errors >= 2, $"{errors} error(s)");
        Assert.Contains($"{config} has {errors} error(s)", status.Error);
        Assert.Contains("a running server keeps the config it has", status.Error);
        Assert.Contains($"isotun config validate {config}", status.Error);
    }

    /// <summary>An empty table says what it lists: no sites is "(no sites)", no sessions "(no sessions)".</summary>
    [Fact]
    public async Task An_empty_table_says_what_it_lists()
    {
        await using var server = await InProcessServer.StartAsync(_pki);
        var socket = _dir.File("admin.sock");
        await using var api = await AdminApi.StartAsync(server.Server, new AdminConfig(null) { Socket = socket }, NullLoggerFactory.Instance);
        var config = _dir.File("admin.yaml");
        File.WriteAllText(config, $"admin:\n  listen: off\n  socket: {socket}\n");
        var sites = await ConsoleCapture.RunAsync(_dir.Path, null, "sites", "--config", config);
        Assert.True(sites.ExitCode == 0, sites.Error);
        Assert.Equal("(no sites)", sites.Out.Trim().Split('\n')[^1]);
        var sessions = await ConsoleCapture.RunAsync(_dir.Path, null, "sessions", "--config", config);
        Assert.Equal("(no sessions)", sessions.Out.Trim().Split('\n')[^1]);
    }

    [Fact]
    public async Task A_file_whose_admin_settings_cannot_be_read_is_named_with_why()
    {
        var broken = _dir.File("broken.yaml");
        File.WriteAllText(broken, "admin:\n  socket: [unclosed\n");
        var syntax = await ConsoleCapture.RunAsync(_dir.Path, null, "status", "--config", broken);
        Assert.Equal(1, syntax.ExitCode);
        Assert.Contains($"{broken}: 1 error(s) where the admin settings are read", syntax.Error);

        var wrong = _dir.File("wrong.yaml");
        File.WriteAllText(wrong, $"admin:\n  socket: /{new string('s', 120)}\n  sokcet: x\ntenants: nonsense\n");
        var admin = await ConsoleCapture.RunAsync(_dir.Path, null, "status", "--config", wrong);
        Assert.Equal(1, admin.ExitCode);
        Assert.Contains("admin.socket: a unix socket path is at most 107 bytes", admin.Error);
        Assert.Contains("admin.sokcet", admin.Error);
        Assert.DoesNotContain("tenants", admin.Error); // errors elsewhere do not stop the admin commands
    }

    [Fact]
    public async Task A_missing_token_file_and_an_answer_that_is_not_the_apis_are_one_line_each()
    {
        var missing = await ConsoleCapture.RunAsync(_dir.Path, null, "status", "--admin", "http://127.0.0.1:1", "--token-file", _dir.File("no-such-token"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no-such-token", missing.Error);
        Assert.Single(missing.Error.Trim().Split('\n'));

        // Something else answers on the address: 200 with text where the API gives JSON.
        using var other = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        other.Start();
        var answer = Task.Run(async () =>
        {
            using var peer = await other.AcceptTcpClientAsync();
            var stream = peer.GetStream();
            var buffer = new byte[4096];
            _ = await stream.ReadAsync(buffer);
            await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"u8.ToArray());
        });
        var foreign = await ConsoleCapture.RunAsync(_dir.Path, null, "status", "--admin", $"http://127.0.0.1:{((System.Net.IPEndPoint)other.LocalEndpoint).Port}");
        await answer;
        Assert.Equal(1, foreign.ExitCode);
        Assert.Contains("is not what this isotun expects", foreign.Error);
        Assert.Single(foreign.Error.Trim().Split('\n'));
    }

    /// <summary>A token file that cannot be written (no such directory, a directory in its place) is one line and exit 1.</summary>
    [Fact]
    public async Task A_token_that_cannot_be_written_is_one_line()
    {
        foreach (var path in new[] { _dir.File("no-such-dir/admin.token"), _dir.Path })
        {
            var r = await ConsoleCapture.RunAsync(_dir.Path, null, "admin", "token", "--file", path, "--force");
            Assert.Equal(1, r.ExitCode);
            Assert.StartsWith($"isotun admin token: cannot write {path}: ", r.Error);
            Assert.Single(r.Error.Trim().Split('\n'));
        }
    }

    [Fact]
    public void Only_the_admin_and_state_settings_decide_whether_the_admin_settings_load()
    {
        var path = _dir.File("partial.yaml");
        File.WriteAllText(path, "admin:\n  socket: run/admin.sock\nlisten: nowhere\nbogus: 1\n");
        var (admin, errors) = ServerConfigLoader.LoadAdmin(path);
        Assert.Empty(errors);
        Assert.Equal(Path.Combine(_dir.Path, "run", "admin.sock"), admin!.Socket);
        Assert.False(ServerConfigLoader.Load(path).Ok);
    }
}
