using Isotun.Client;
using Isotun.Metrics;
using Isotun.Server;

namespace Isotun.UnitTests.InProcess;

/// <summary>Login bans and the per-user session limit, end to end: a real client and server over TLS on 127.0.0.1.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessLoginLimitTests(InProcessPki pki)
{
    [Fact]
    public async Task Repeated_wrong_passwords_ban_the_user_so_even_the_right_one_is_refused_until_unbanned()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        server.Server.Logins.Configure(userBanAfter: 3, sourceBanAfter: 1000, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
        for (int i = 0; i < 3; i++)
        {
            await using var guess = InProcessClient.Start(server.Options(password: "wrong " + i));
            Assert.Equal(ClientExitCode.AuthFailed, (await Assert.ThrowsAsync<ClientException>(() => guess.Run)).Code);
        }
        Assert.Equal(3, ServerMetrics.Auth(server.Tenant, AuthOutcome.BadPassword));
        Assert.Equal(1, server.Server.Logins.BannedUsers);

        long throttled = ServerMetrics.Auth("-", AuthOutcome.Throttled);
        await using (var right = InProcessClient.Start(server.Options()))
            Assert.Equal(ClientExitCode.AuthFailed, (await Assert.ThrowsAsync<ClientException>(() => right.Run)).Code);
        Assert.Equal(throttled + 1, ServerMetrics.Auth("-", AuthOutcome.Throttled));
        Assert.Equal(3, ServerMetrics.Auth(server.Tenant, AuthOutcome.BadPassword)); // refused before any hash
        Assert.Empty(server.Server.Sessions.All);

        // Another user of the tenant was never affected, and the operator's unban lets alice in again.
        Assert.Equal(LoginBlock.None, server.Server.Logins.Check(null, LoginThrottle.UserKey(server.Tenant, InProcessPki.OtherUser)));
        Assert.True(server.Server.Logins.UnbanUser(LoginThrottle.UserKey(server.Tenant, InProcessPki.User)));
        await using var again = await InProcessClient.ConnectAsync(server, server.Options());
        Assert.Contains(server.Server.Sessions.All, s => s.User == InProcessPki.User);
    }

    /// <summary>Guesses sent all at once get no more tries than guesses sent one after another: past the ban's count,
    /// the attempts still under way hold the rest back.</summary>
    [Fact]
    public async Task Guesses_sent_at_once_are_held_to_the_bans_count()
    {
        // A slow hash (about half a second here): every guess arrives while the first ones are still being checked.
        using var dir = new Isotun.UnitTests.Security.TempDirectory();
        var file = dir.File("users.passwd");
        Isotun.Security.PasswordFile.SetUser(file, InProcessPki.User, Isotun.Security.PasswordHasher.Hash("the right one", 1_000_000));
        await using var server = await InProcessServer.StartAsync(pki, t => t with { PasswordFile = file });
        server.Server.Logins.Configure(userBanAfter: 3, sourceBanAfter: 1000, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
        long throttled = ServerMetrics.Auth("-", AuthOutcome.Throttled);
        // Threads enough that the guesses' handshakes are not held up behind the hashes (client and server share this
        // process's pool), so they do arrive while the first ones are checked.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), io);
        var guesses = Enumerable.Range(0, 12).Select(async i =>
        {
            try
            {
                await AuthClient.LoginAsync(server.Options(password: "wrong " + i), CancellationToken.None);
            }
            catch (ClientException e) when (e.Code == ClientExitCode.AuthFailed)
            {
            }
        }).ToList();
        try
        {
            await Task.WhenAll(guesses).WaitAsync(Eventually.Deadline);
        }
        finally
        {
            ThreadPool.SetMinThreads(workers, io);
        }
        Assert.Equal(3, ServerMetrics.Auth(server.Tenant, AuthOutcome.BadPassword));
        Assert.Equal(throttled + 9, ServerMetrics.Auth("-", AuthOutcome.Throttled));
        Assert.Equal(1, server.Server.Logins.BannedUsers);
    }

    [Fact]
    public async Task Logging_in_again_and_again_replaces_the_users_idle_sessions_instead_of_filling_the_server()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { MaxSessionsPerUser = 2 });
        // Each login leaves a session without a connection (as `isotun connect --authenticate` or a client that died).
        var cookies = new List<string>();
        for (int i = 0; i < 6; i++) cookies.Add(await AuthClient.LoginAsync(server.Options(), CancellationToken.None));
        Assert.Equal(2, server.Server.Sessions.All.Count(s => s.User == InProcessPki.User));
        Assert.Equal(6, cookies.Distinct().Count());
        Assert.Equal(6, ServerMetrics.Auth(server.Tenant, AuthOutcome.Ok));
        Assert.Equal(0, ServerMetrics.Auth(server.Tenant, AuthOutcome.TooManySessions));
    }
}

/// <summary>An XML logout (what AnyConnect clients send to log off) ends the session its cookie names, and the cookie.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessLogoutTests(InProcessPki pki)
{
    [Fact]
    public async Task An_xml_logout_revokes_the_cookie_it_carries()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var options = server.Options();
        using var cts = new CancellationTokenSource(Eventually.Deadline);
        var cookie = await AuthClient.LoginAsync(options, cts.Token);
        Assert.Single(server.Server.Sessions.All);

        var store = (Isotun.State.MemoryStateStore)server.Server.State;
        async Task LogoutAsync()
        {
            await using var conn = await HttpsConnection.OpenAsync(options, cts.Token);
            const string logout = """<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="logout"><session-token/></config-auth>""";
            var (head, _) = await conn.SendAsync("POST", "/", AuthClient.HostHeader(options.Server),
                [new("Cookie", Isotun.Protocol.Http.SessionCookie.CookieValue(cookie)), new("Content-Type", "application/xml")],
                System.Text.Encoding.UTF8.GetBytes(logout), false, Eventually.Deadline, cts.Token);
            Assert.Equal(200, head.StatusCode);
        }
        await LogoutAsync();

        Assert.Empty(server.Server.Sessions.All);
        await using var again = await RawCstpClient.ConnectAsync(options, cookie);
        Assert.Equal(401, again.Status);

        // Logging out again with the dead cookie writes nothing more (each write syncs the state file under its lock).
        int written = store.RevocationsWritten;
        for (int i = 0; i < 3; i++) await LogoutAsync();
        Assert.Equal(written, store.RevocationsWritten);
    }
}

/// <summary>The login gate bounds password hashing only: a certificate login does not wait behind a storm of passwords.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessLoginGateTests(InProcessPki pki)
{
    [Fact]
    public async Task A_certificate_login_passes_while_every_hashing_slot_is_taken()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { AllowedOus = [InProcessPki.CertOu] });
        // Every slot taken, as by password logins in the middle of their PBKDF2.
        for (int i = 0; i < LoginGate.DefaultConcurrency; i++) Assert.Equal(GateEntry.Entered, await server.Server.LoginGate.EnterAsync(null, CancellationToken.None));
        try
        {
            var options = server.Options(user: null, password: null) with { CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey };
            await using var client = await InProcessClient.ConnectAsync(server, options);
            Assert.Equal(InProcessPki.CertUser, Assert.Single(server.Server.Sessions.All).User);
        }
        finally
        {
            for (int i = 0; i < LoginGate.DefaultConcurrency; i++) server.Server.LoginGate.Exit(null);
        }
    }
}

/// <summary>
/// The group list a stock client falls back to with GET: every tenant's name when nothing picked one, and none once the
/// path or a tenant's own server name has (a customer of one tenant is not shown the others' names).
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessGroupListTests(InProcessPki pki)
{
    [Fact]
    public async Task A_get_lists_the_groups_only_when_neither_the_path_nor_the_server_name_picked_a_tenant()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { ServerNames = ["vpn.first.test"] }, t => t);
        var first = server.Server.TenantRuntimes.Single(t => t.Config.ServerNames.Count > 0).Name;
        var second = server.Server.TenantRuntimes.Single(t => t.Config.ServerNames.Count == 0).Name;

        async Task<string> GetAsync(string host, string target)
        {
            var options = server.Options() with { Server = new Uri($"https://{host}:{server.Port}/") };
            using var cts = new CancellationTokenSource(Eventually.Deadline);
            await using var conn = await HttpsConnection.OpenAsync(options, cts.Token, System.Net.IPAddress.Loopback);
            var (head, body) = await conn.SendAsync("GET", target, host, [], null, false, Eventually.Deadline, cts.Token);
            Assert.Equal(200, head.StatusCode);
            return System.Text.Encoding.UTF8.GetString(body);
        }

        var open = await GetAsync("127.0.0.1", "/");
        Assert.Contains(first, open);
        Assert.Contains(second, open);
        foreach (var (host, target) in new[] { ("vpn.first.test", "/"), ("127.0.0.1", "/" + second) })
        {
            var picked = await GetAsync(host, target);
            Assert.Contains("username", picked);
            Assert.DoesNotContain("group_list", picked);
            Assert.DoesNotContain(host == "127.0.0.1" ? first : second, picked);
        }
    }
}

/// <summary>
/// A tenant's password file changed while the server runs (`isotun user add`, `user remove`, an edit) is taken without
/// a reload: a new user may log in, a removed user's session ends, and a broken edit leaves the last good file in force.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessPasswordFileTests(InProcessPki pki) : IDisposable
{
    private readonly Isotun.UnitTests.Security.TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_changed_password_file_is_taken_without_a_reload()
    {
        var file = _dir.File("users.passwd");
        File.Copy(pki.Passwords, file);
        await using var server = await InProcessServer.StartAsync(pki, t => t with { PasswordFile = file });
        await using var alice = await InProcessClient.ConnectAsync(server, server.Options());

        // A new user, added while the server runs, logs in.
        const string dave = "dave", davePassword = "a password for dave";
        Isotun.Security.PasswordFile.SetUser(file, dave, Isotun.Security.PasswordHasher.Hash(davePassword, Isotun.Security.PasswordHasher.MinIterations));
        var tenant = server.Server.TenantRuntimes.Single();
        await Eventually.True(() => tenant.Passwords!.TryGetHash(dave, out _), "the server did not take the new user");
        await AuthClient.LoginAsync(server.Options(user: dave, password: davePassword), CancellationToken.None);

        // Alice removed: her live session ends by itself, within the server's look at the file.
        Isotun.Security.PasswordFile.RemoveUser(file, InProcessPki.User);
        await Eventually.True(() => !server.Server.Sessions.All.Any(s => s.User == InProcessPki.User), "alice's session did not end after she was removed");
        Assert.Equal(ClientExitCode.AuthFailed, (await Assert.ThrowsAsync<ClientException>(() =>
            AuthClient.LoginAsync(server.Options(), CancellationToken.None))).Code);

        // A broken edit: refused, and the last good file stays in force (dave still logs in).
        File.AppendAllText(file, "this line is no user:hash entry\n");
        Assert.Equal(0, server.Server.RereadPasswordFiles());
        await AuthClient.LoginAsync(server.Options(user: dave, password: davePassword), CancellationToken.None);
    }
}

/// <summary>
/// A cookie that ends later than one issued now would (issued before <c>cookie.lifetime</c> was cut, say in an
/// incident) is refused: it would otherwise keep its old life, and its login time, worked out from the shorter
/// lifetime, would read later than it was.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessCookieLifetimeTests(InProcessPki pki)
{
    [Fact]
    public async Task A_cookie_issued_for_longer_than_the_lifetime_now_is_refused()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var options = server.Options();
        var cookie = await AuthClient.LoginAsync(options, CancellationToken.None);
        Assert.Equal(Isotun.Protocol.Cookies.CookieOpenResult.Ok, server.Server.Cookies.TryOpen(cookie, out var ticket));

        var longer = server.Server.Cookies.Seal(ticket! with { ExpiresAt = ticket!.ExpiresAt + TimeSpan.FromDays(6) });
        await using (var refused = await RawCstpClient.ConnectAsync(options, longer))
            Assert.Equal(401, refused.Status);

        // Within the lifetime (and the minute another node's clock may be ahead): the same session connects.
        var skewed = server.Server.Cookies.Seal(ticket with { ExpiresAt = ticket.ExpiresAt + TimeSpan.FromSeconds(30) });
        await using var accepted = await RawCstpClient.ConnectAsync(options, skewed);
        Assert.Equal(200, accepted.Status);
    }
}
