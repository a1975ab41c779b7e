using Isotun.UnitTests.Gateway;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Isotun.Admin;
using Isotun.Client;
using Isotun.Metrics;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The admin API on a real unix socket (and TCP with a token) in front of an in-process server with a live client:
/// list, show, kick (the cookie dies), revoke (the user is out until enabled), reload, unban, and the hostile inputs.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessAdminTests(InProcessPki pki) : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task<(AdminApi Api, AdminClient Client)> StartAsync(InProcessServer server, IPEndPoint? tcp = null, string? tokenFile = null)
    {
        var socket = _dir.File("admin.sock");
        var api = await AdminApi.StartAsync(server.Server, new AdminConfig(tcp) { Socket = socket, TokenFile = tokenFile }, NullLoggerFactory.Instance);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        return (api, new AdminClient(socket));
    }

    /// <summary>
    /// <c>admin.socket</c> naming a file that is no socket (a typo for the state file, say) stops the start with the
    /// reason, and the file is left as it was; a socket a crashed server left behind is replaced.
    /// </summary>
    [Fact]
    public async Task An_admin_socket_path_that_names_a_file_that_is_no_socket_is_refused_and_the_file_kept()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var precious = _dir.File("state-copy.db");
        File.WriteAllText(precious, "someone's data");
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            AdminApi.StartAsync(server.Server, new AdminConfig(null) { Socket = precious }, NullLoggerFactory.Instance));
        Assert.Contains("not a socket", refused.Message);
        Assert.Equal("someone's data", File.ReadAllText(precious));
        Assert.Equal(false, Isotun.Linux.Libc.IsSocket(precious));
        Assert.Null(Isotun.Linux.Libc.IsSocket(_dir.File("absent")));

        // A socket nobody listens on (as a crash leaves it; kept open here, since closing it would take its file away): taken over.
        var left = _dir.File("admin.sock");
        using var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        dead.Bind(new UnixDomainSocketEndPoint(left));
        Assert.Equal(true, Isotun.Linux.Libc.IsSocket(left));
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
            Assert.True((await admin.GetAsync("api/v1/status")).Ok);
    }

    /// <summary>A reload asked for while the server stops is refused, and says so: not reported as applied.</summary>
    [Fact]
    public async Task A_reload_while_the_server_stops_is_refused()
    {
        var server = await InProcessServer.StartAsync(pki);
        await server.DisposeAsync();
        var report = server.Server.Reload();
        Assert.StartsWith("reload refused", Assert.Single(report));
    }

    [Fact]
    public async Task A_live_session_is_listed_with_its_details_and_a_kick_ends_it_and_kills_its_cookie()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
        {
            var list = await admin.GetAsync("api/v1/sessions?tenant=" + server.Tenant);
            Assert.True(list.Ok, list.Text);
            var s = Assert.Single(list.Json!.Value.EnumerateArray());
            Assert.Equal(InProcessPki.User, s.GetProperty("user").GetString());
            Assert.Equal(client.Address.ToString(), s.GetProperty("address").GetString());
            Assert.True(s.GetProperty("connected").GetBoolean());
            Assert.StartsWith("127.0.0.1:", s.GetProperty("source").GetString());
            Assert.Contains("isotun", s.GetProperty("clientVersion").GetString(), StringComparison.OrdinalIgnoreCase);
            var id = s.GetProperty("id").GetString()!;

            // Traffic shows in the session's counters.
            client.Send(Packets.Numbered(client.Address, Packets.Far4, 1), 0);
            Packets.Take(server.Tun(), "the packet did not arrive");
            Assert.True(await Eventually.Holds(() => admin.GetAsync("api/v1/sessions/" + id[..8]).GetAwaiter().GetResult().Json!.Value.GetProperty("rxPackets").GetInt64() >= 1),
                "the session's counters did not show the packet");
            Assert.Empty((await admin.GetAsync("api/v1/sessions?user=nobody")).Json!.Value.EnumerateArray());

            var kicked = await admin.DeleteAsync("api/v1/sessions/" + id);
            Assert.True(kicked.Ok, kicked.Text);
            // The client's connection closes; its reconnect with the cookie is refused, so it ends.
            var end = await Assert.ThrowsAsync<ClientException>(() => client.Run.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(ClientExitCode.SessionEnded, end.Code);
            Assert.Equal(404, (await admin.GetAsync("api/v1/sessions/" + id)).Status);
            Assert.Equal(404, (await admin.DeleteAsync("api/v1/sessions/" + id)).Status);
        }
    }

    [Fact]
    public async Task A_revoked_user_is_out_at_once_and_stays_out_until_enabled()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        // A cookie of alice's that no session here holds (its session was on the server before a restart, say, on a
        // laptop asleep): the revocation cannot end it, and enabling alice again must not bring it back.
        Assert.Equal(Isotun.Protocol.Cookies.CookieOpenResult.Ok, server.Server.Cookies.TryOpen(await AuthClient.LoginAsync(server.Options(), CancellationToken.None), out var issued));
        var unreached = server.Server.Cookies.Seal(issued! with { SessionId = Guid.NewGuid(), ExpiresAt = issued.ExpiresAt - TimeSpan.FromSeconds(5) });
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
        {
            var revoked = await admin.PostAsync($"api/v1/tenants/{server.Tenant}/users/{InProcessPki.User}/revoke");
            Assert.Equal(2, revoked.Json!.Value.GetProperty("sessionsEnded").GetInt32());
            Assert.Equal(ClientExitCode.SessionEnded, (await Assert.ThrowsAsync<ClientException>(() => client.Run.WaitAsync(TimeSpan.FromSeconds(30)))).Code);

            await using (var again = InProcessClient.Start(server.Options()))
                Assert.Equal(ClientExitCode.AuthFailed, (await Assert.ThrowsAsync<ClientException>(() => again.Run)).Code);
            Assert.True(ServerMetrics.Auth(server.Tenant, AuthOutcome.Revoked) >= 1);
            Assert.Equal(1, (await admin.GetAsync("api/v1/status")).Json!.Value.GetProperty("revokedUsers").GetInt32());

            Assert.True((await admin.PostAsync($"api/v1/tenants/{server.Tenant}/users/{InProcessPki.User}/enable")).Json!.Value.GetProperty("wasRevoked").GetBoolean());
            await using var back = await InProcessClient.ConnectAsync(server, server.Options());
            await using (var old = await RawCstpClient.ConnectAsync(server.Options(), unreached))
                Assert.Equal(401, old.Status);
            Assert.Equal(404, (await admin.PostAsync($"api/v1/tenants/nosuch/users/x/revoke")).Status);
            // A name no login can have is refused, not kept (a line break in it split the file's line).
            var crafted = await admin.PostAsync($"api/v1/tenants/{server.Tenant}/users/a%0Ab/revoke");
            Assert.Equal(400, crafted.Status);
            Assert.Contains("not a user name", crafted.Error);
            Assert.Equal(0, (await admin.GetAsync("api/v1/status")).Json!.Value.GetProperty("revokedUsers").GetInt32());
            Assert.Equal(400, (await admin.PostAsync("api/v1/unban", new UnbanRequest(null, server.Tenant, "x y"))).Status);
            Assert.Equal(404, (await admin.PostAsync("api/v1/unban", new UnbanRequest(null, "nosuch", "alice"))).Status);
            Assert.Equal(200, (await admin.PostAsync("api/v1/unban", new UnbanRequest(null, null, "alice"))).Status); // the user in every tenant
        }
    }

    [Fact]
    public async Task A_revocation_that_cannot_be_saved_still_ends_the_users_sessions_and_says_so()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        // The file beside the state file cannot be written: a directory stands where it goes.
        Directory.CreateDirectory(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(server.Server.Config.StatePath))!, "revoked-users"));
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
        {
            var revoked = await admin.PostAsync($"api/v1/tenants/{server.Tenant}/users/{InProcessPki.User}/revoke");
            Assert.Equal(500, revoked.Status);
            Assert.Contains("1 session(s) ended", revoked.Error);
            Assert.Contains("does not outlive a restart", revoked.Error);
            Assert.Equal(ClientExitCode.SessionEnded, (await Assert.ThrowsAsync<ClientException>(() => client.Run.WaitAsync(TimeSpan.FromSeconds(30)))).Code);
            await using var again = InProcessClient.Start(server.Options());
            Assert.Equal(ClientExitCode.AuthFailed, (await Assert.ThrowsAsync<ClientException>(() => again.Run)).Code);
        }
    }

    [Fact]
    public async Task Status_tenants_health_readiness_metrics_openapi_and_reload_answer()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
        {
            var status = await admin.GetAsync("api/v1/status");
            Assert.True(status.Json!.Value.GetProperty("ready").GetBoolean());
            var keys = status.Json.Value.GetProperty("cookieKeys");
            Assert.Equal(server.Server.Cookies.Ring.Current.Id, keys.GetProperty("sealing").GetUInt32());
            Assert.Equal(1, keys.GetProperty("keys").GetInt32());
            Assert.Equal(keys.GetProperty("sealingSince").GetDateTimeOffset() + server.Server.Config.Cookie.RotateEvery, keys.GetProperty("nextRotation").GetDateTimeOffset());
            Assert.Contains((await admin.GetAsync("api/v1/tenants")).Json!.Value.EnumerateArray(), t => t.GetProperty("name").GetString() == server.Tenant);
            Assert.Equal("ok\n", (await admin.GetAsync("healthz")).Text);
            Assert.Equal("ready\n", (await admin.GetAsync("readyz")).Text);
            Assert.Contains("isotun_", (await admin.GetAsync("metrics")).Text);
            var openapi = await admin.GetAsync("api/v1/openapi.json");
            Assert.Equal("3.0.3", openapi.Json!.Value.GetProperty("openapi").GetString());
            Assert.True(openapi.Json.Value.GetProperty("paths").TryGetProperty("/api/v1/sessions/{id}", out _));
            // The in-process server listens on a port of its own choosing, not the file's: the reload is refused, with the reason.
            var reload = await admin.PostAsync("api/v1/reload");
            Assert.Equal(409, reload.Status);
            Assert.False(reload.Json!.Value.GetProperty("applied").GetBoolean());
            Assert.Contains(reload.Json.Value.GetProperty("report").EnumerateArray(), l => l.GetString()!.Contains("listen, tls, state or cookie changed"));
        }
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_the_reason_and_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var (api, admin) = await StartAsync(server);
        await using (api)
        using (admin)
        {
            Assert.Equal(404, (await admin.GetAsync("api/v1/sessions/not-an-id")).Status);
            var malformed = await admin.SendAsync(HttpMethod.Post, "api/v1/unban", null);
            Assert.Equal(400, malformed.Status);
            using var raw = new HttpClient(new SocketsHttpHandler { ConnectCallback = async (_, ct) => await UnixAsync(_dir.File("admin.sock"), ct) }) { BaseAddress = new Uri("http://admin/") };
            var bad = await raw.PostAsync("api/v1/unban", new StringContent("{not json", Encoding.UTF8, "application/json"));
            Assert.Equal(400, (int)bad.StatusCode);
            Assert.Contains("malformed JSON", await bad.Content.ReadAsStringAsync());
            // Head and body in one write: the server answers 413 from the head and closes, which a client still
            // sending its body would meet as a broken pipe.
            await using (var big = await UnixAsync(_dir.File("admin.sock"), CancellationToken.None))
            {
                string json = "{\"source\":\"" + new string('1', 20_000) + "\"}";
                await big.WriteAsync(Encoding.ASCII.GetBytes($"POST /api/v1/unban HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\n\r\n{json}"));
                var answer = new byte[64];
                int n = await big.ReadAtLeastAsync(answer, 12, throwOnEndOfStream: false);
                Assert.StartsWith("HTTP/1.1 413", Encoding.ASCII.GetString(answer, 0, n));
            }
            var notIp = await admin.PostAsync("api/v1/unban", new UnbanRequest("not-an-ip", null, null));
            Assert.Equal(400, notIp.Status);
            Assert.Contains("not an IP address", notIp.Error);
        }
    }

    [Fact]
    public async Task Over_tcp_the_api_needs_the_token_while_metrics_and_health_stay_open()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tokenFile = _dir.File("admin.token");
        Isotun.Security.SecretFile.WriteAllText(tokenFile, "s3cret-token-of-at-least-32-characters\n", overwrite: true);
        int port = LoopbackTcp.FreePort();
        ServerMetrics.Start();
        var (api, _) = await StartAsync(server, new IPEndPoint(IPAddress.Loopback, port), tokenFile);
        await using (api)
        {
            using var anonymous = new AdminClient($"http://127.0.0.1:{port}");
            long before = ServerMetrics.Admin("unauthorized");
            var refused = await anonymous.GetAsync("api/v1/status");
            Assert.Equal(401, refused.Status);
            Assert.True(ServerMetrics.Admin("unauthorized") > before);
            Assert.Equal(401, (await new AdminClient($"http://127.0.0.1:{port}", "wrong").GetAsync("api/v1/sessions")).Status);
            Assert.Equal(200, (await anonymous.GetAsync("metrics")).Status);
            Assert.Equal(200, (await anonymous.GetAsync("healthz")).Status);
            using var authorized = new AdminClient($"http://127.0.0.1:{port}", "s3cret-token-of-at-least-32-characters");
            Assert.True((await authorized.GetAsync("api/v1/status")).Ok);
        }
    }

    /// <summary>Without admin.token-file the API is not served over TCP, and a refused caller is told that, not to try
    /// another token; with one, a wrong token is told it needs a valid one.</summary>
    [Fact]
    public async Task Over_tcp_a_refusal_says_whether_a_token_could_help()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        int port = LoopbackTcp.FreePort();
        var (api, _) = await StartAsync(server, new IPEndPoint(IPAddress.Loopback, port), tokenFile: null);
        await using (api)
        {
            var refused = await new AdminClient($"http://127.0.0.1:{port}", "any-token-of-at-least-32-characters-long").GetAsync("api/v1/status");
            Assert.Equal(401, refused.Status);
            Assert.Contains("not served over TCP without admin.token-file; use the unix socket", refused.Error);
        }
        var tokenFile = _dir.File("admin.token");
        Isotun.Security.SecretFile.WriteAllText(tokenFile, "s3cret-token-of-at-least-32-characters\n", overwrite: true);
        port = LoopbackTcp.FreePort();
        (api, _) = await StartAsync(server, new IPEndPoint(IPAddress.Loopback, port), tokenFile);
        await using (api)
        {
            var wrong = await new AdminClient($"http://127.0.0.1:{port}", "wrong").GetAsync("api/v1/status");
            Assert.Equal(401, wrong.Status);
            Assert.Equal("a valid bearer token is required", wrong.Error);
        }
    }

    /// <summary>
    /// The unix socket serves root and the server's own user only, whatever the file's mode: a connection made before
    /// the mode was narrowed, or through a mode someone loosened, is refused. A client run as nobody (setpriv), from
    /// a copy of the CLI it may read, against a socket opened to everyone.
    /// </summary>
    [SkippableFact]
    public async Task Over_the_unix_socket_another_user_is_refused_whatever_the_sockets_mode()
    {
        Skip.IfNot(Isotun.Linux.Libc.geteuid() == 0, "runs a client as another user: needs root");
        Skip.IfNot(File.Exists("/usr/bin/setpriv"), "/usr/bin/setpriv is missing (util-linux)");
        await using var server = await InProcessServer.StartAsync(pki);
        var open = Directory.CreateTempSubdirectory("isotun-admin-peer-").FullName;
        try
        {
            File.SetUnixFileMode(open, (UnixFileMode)0b111_101_101);
            var socket = Path.Combine(open, "admin.sock");
            await using var api = await AdminApi.StartAsync(server.Server, new AdminConfig(null) { Socket = socket }, NullLoggerFactory.Instance);
            File.SetUnixFileMode(socket, (UnixFileMode)0b110_110_110);
            var app = Path.Combine(open, "app");
            foreach (var file in Directory.EnumerateFiles(AppContext.BaseDirectory, "*", SearchOption.AllDirectories))
            {
                var copy = Path.Combine(app, Path.GetRelativePath(AppContext.BaseDirectory, file));
                Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
                File.Copy(file, copy);
            }
            var cli = Path.Combine(app, "isotun");
            Assert.True(File.Exists(cli), $"the CLI is not beside the tests at {AppContext.BaseDirectory}");
            File.SetUnixFileMode(cli, (UnixFileMode)0b111_101_101);

            var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", cli, "status", "--admin", socket])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            psi.Environment["HOME"] = "/tmp";
            using var nobody = System.Diagnostics.Process.Start(psi)!;
            var error = await nobody.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await nobody.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.NotEqual(0, nobody.ExitCode);
            Assert.Contains("the admin socket serves root and the server's own user only (HTTP 403)", error);
            // Its owner (root here) is served as ever.
            Assert.True((await new AdminClient(socket).GetAsync("api/v1/status")).Ok);
        }
        finally
        {
            Directory.Delete(open, recursive: true);
        }
    }

    /// <summary>
    /// A token replaced in its file (a leaked one rotated with `isotun admin token --force`) is the only one taken from
    /// the next request on, with no reload; a file that no longer holds a usable token admits nobody.
    /// </summary>
    [Fact]
    public async Task Over_tcp_a_token_replaced_in_its_file_replaces_the_old_one_at_once()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tokenFile = _dir.File("rotated.token");
        const string leaked = "the-leaked-token-of-at-least-32-characters", fresh = "a-fresh-token-of-at-least-32-characters!";
        Isotun.Security.SecretFile.WriteAllText(tokenFile, leaked + "\n", overwrite: true);
        int port = LoopbackTcp.FreePort();
        var (api, _) = await StartAsync(server, new IPEndPoint(IPAddress.Loopback, port), tokenFile);
        await using (api)
        {
            using var old = new AdminClient($"http://127.0.0.1:{port}", leaked);
            using var rotated = new AdminClient($"http://127.0.0.1:{port}", fresh);
            Assert.Equal(200, (await old.GetAsync("api/v1/status")).Status);
            Isotun.Security.SecretFile.WriteAllText(tokenFile, fresh + "\n", overwrite: true);
            Assert.Equal(401, (await old.GetAsync("api/v1/status")).Status);
            Assert.Equal(200, (await rotated.GetAsync("api/v1/status")).Status);

            // Rotated by a copy that keeps the old file's time (`cp -p`, `rsync -a`), and of the same length: still taken.
            const string copied = "a-copied-token-of-at-least-32-characters";
            Assert.Equal(fresh.Length, copied.Length);
            var written = File.GetLastWriteTimeUtc(tokenFile);
            Isotun.Security.SecretFile.WriteAllText(tokenFile, copied + "\n", overwrite: true);
            File.SetLastWriteTimeUtc(tokenFile, written);
            Assert.Equal(401, (await rotated.GetAsync("api/v1/status")).Status);
            using var copy = new AdminClient($"http://127.0.0.1:{port}", copied);
            Assert.Equal(200, (await copy.GetAsync("api/v1/status")).Status);
            Isotun.Security.SecretFile.WriteAllText(tokenFile, fresh + "\n", overwrite: true);

            File.SetUnixFileMode(tokenFile, (UnixFileMode)0b110_100_100); // 0644: no longer a secret
            Assert.Equal(401, (await rotated.GetAsync("api/v1/status")).Status);
            File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Isotun.Security.SecretFile.WriteAllText(tokenFile, "short\n", overwrite: true);
            Assert.Equal(401, (await rotated.GetAsync("api/v1/status")).Status);
            Assert.Equal(401, (await new AdminClient($"http://127.0.0.1:{port}", "short").GetAsync("api/v1/status")).Status);
        }
    }

    /// <summary>An empty token (a file the loader would refuse) lets nobody in, not even a request with an empty one.</summary>
    [Fact]
    public async Task Over_tcp_an_empty_token_file_admits_nobody()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var tokenFile = _dir.File("empty.token");
        Isotun.Security.SecretFile.WriteAllText(tokenFile, "\n", overwrite: true);
        int port = LoopbackTcp.FreePort();
        var (api, _) = await StartAsync(server, new IPEndPoint(IPAddress.Loopback, port), tokenFile);
        await using (api)
        {
            using var http = new HttpClient();
            foreach (var header in new[] { "Bearer ", "Bearer \u000b", "Bearer \u000c" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/api/v1/status");
                request.Headers.TryAddWithoutValidation("Authorization", header);
                using var response = await http.SendAsync(request);
                Assert.False(response.IsSuccessStatusCode, $"'{header}' was let in");
            }
            Assert.Equal(401, (await new AdminClient($"http://127.0.0.1:{port}", "").GetAsync("api/v1/status")).Status);
        }
    }

    private static async ValueTask<Stream> UnixAsync(string path, CancellationToken ct)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
        return new NetworkStream(s, ownsSocket: true);
    }
}
