using Isotun.UnitTests.Gateway;
using Isotun.Protocol.Cookies;
using Isotun.Security;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>A server reload is all or nothing, one at a time, and never throws (it runs from a signal handler).</summary>
public sealed class ReloadTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _config;

    public ReloadTests()
    {
        _config = _temp.File("isotun.yaml");
        PasswordFile.SetUser(_temp.File("a.passwd"), "alice", PasswordHasher.Hash("alice-secret", 1000));
        PasswordFile.SetUser(_temp.File("b.passwd"), "bob", PasswordHasher.Hash("bob-secret", 1000));
        Write(poolB: "10.20.0.0/24");
    }

    public void Dispose() => _temp.Dispose();

    private void Write(string poolB, string extraLimits = "", int mtuB = 1400, string? adminSocket = null) => TestServerConfig.Write(_temp, $"""
        limits:
          max-sessions: 100{extraLimits}
        tenants:
          - name: a
            pool: 10.10.0.0/24
            password-file: a.passwd
          - name: b
            pool: {poolB}
            mtu: {mtuB}
            password-file: b.passwd
        """, adminSocket: adminSocket);

    private async Task<VpnServer> StartAsync()
    {
        await Task.CompletedTask;
        return new VpnServer(TestServerConfig.Load(_config), NullLoggerFactory.Instance, new MemoryStateStore());
    }

    private static bool Knows(VpnServer server, string tenant, string user) =>
        server.Authenticator.Tenants[tenant].Passwords!.TryGetHash(user, out _);

    [Fact]
    public async Task A_reload_applies_every_tenants_changes_together()
    {
        await using var server = await StartAsync();
        PasswordFile.SetUser(_temp.File("a.passwd"), "zed", PasswordHasher.Hash("zed-secret", 1000));
        PasswordFile.SetUser(_temp.File("b.passwd"), "yan", PasswordHasher.Hash("yan-secret", 1000));
        Write(poolB: "10.20.0.0/24", extraLimits: "\n  per-source-connections: 7");
        var report = server.Reload();
        Assert.Equal(["tenant a: applied", "tenant b: applied"], report);
        Assert.True(Knows(server, "a", "zed"));
        Assert.True(Knows(server, "b", "yan"));
        Assert.Equal(7, server.Config.Limits.PerSourceConnections);
    }

    [Fact]
    public async Task A_change_that_cannot_be_applied_live_refuses_the_whole_reload()
    {
        await using var server = await StartAsync();
        // tenant a gets a new user (applicable), tenant b a new MTU (needs a restart): nothing at all is applied.
        PasswordFile.SetUser(_temp.File("a.passwd"), "zed", PasswordHasher.Hash("zed-secret", 1000));
        Write(poolB: "10.21.0.0/24", extraLimits: "\n  per-source-connections: 7", mtuB: 1300);
        var report = server.Reload();
        Assert.StartsWith("reload refused, 1 change(s) cannot be applied live; nothing was applied", report[0]);
        Assert.Contains("  tenant b: changed mtu: restart the server to apply", report);
        Assert.Equal("10.20.0.0/24", server.Config.Tenants[1].Pool.ToString());
        Assert.False(Knows(server, "a", "zed"));
        Assert.Equal(LimitsConfig.DefaultPerSourceConnections, server.Config.Limits.PerSourceConnections);
    }

    [Fact]
    public async Task A_refused_reload_lists_every_reason_not_only_the_first()
    {
        await using var server = await StartAsync();
        Write(poolB: "10.20.0.0/24", mtuB: 1300, adminSocket: _temp.File("elsewhere.sock"));
        var report = server.Reload();
        Assert.StartsWith("reload refused, 2 change(s)", report[0]);
        Assert.Contains("  admin changed: restart the server to apply", report);
        Assert.Contains("  tenant b: changed mtu: restart the server to apply", report);
    }

    /// <summary>The admin plane is opened at start: a reload that changes it is refused, not quietly kept as it was.</summary>
    [Fact]
    public async Task A_changed_admin_section_refuses_the_reload()
    {
        await using var server = await StartAsync();
        var socket = server.Config.Admin.Socket;
        Write(poolB: "10.20.0.0/24", extraLimits: "\n  per-source-connections: 7", adminSocket: _temp.File("elsewhere.sock"));
        var report = server.Reload();
        Assert.StartsWith("reload refused", report[0]);
        Assert.Contains("  admin changed: restart the server to apply", report);
        Assert.Equal(socket, server.Config.Admin.Socket);
        Assert.Equal(LimitsConfig.DefaultPerSourceConnections, server.Config.Limits.PerSourceConnections);
    }

    [Fact]
    public async Task A_tenant_that_begins_to_take_certificates_in_a_reload_has_the_handshake_ask_for_them()
    {
        await using var server = await StartAsync();
        Assert.False(server.TlsOptions.ClientCertificateRequired);
        TestServerConfig.Write(_temp, """
            limits:
              max-sessions: 100
            tenants:
              - name: a
                pool: 10.10.0.0/24
                password-file: a.passwd
                client-ca: pki/server.crt
              - name: b
                pool: 10.20.0.0/24
                mtu: 1400
                password-file: b.passwd
            """);
        Assert.Equal(["tenant a: applied", "tenant b: applied"], server.Reload());
        Assert.True(server.TlsOptions.ClientCertificateRequired); // asked for only when tenants came or went, before
    }

    [Fact]
    public async Task A_new_pool_that_no_live_lease_is_in_the_way_of_is_applied_by_a_reload()
    {
        await using var server = await StartAsync();
        Write(poolB: "10.21.0.0/23");
        Assert.Equal(["tenant a: applied", "tenant b: applied"], server.Reload());
        Assert.Equal("10.21.0.0/23", server.Config.Tenants[1].Pool.ToString());
        Assert.Equal("10.21.0.1", server.TenantRuntimes.Single(t => t.Name == "b").Gateway.ToString());
    }

    [Fact]
    public async Task A_password_file_that_cannot_be_read_refuses_the_whole_reload()
    {
        await using var server = await StartAsync();
        PasswordFile.SetUser(_temp.File("a.passwd"), "zed", PasswordHasher.Hash("zed-secret", 1000));
        File.WriteAllText(_temp.File("b.passwd"), "bob:not a hash at all\n");
        var report = server.Reload();
        Assert.StartsWith("reload refused", report[0]);
        Assert.Contains(report, l => l.StartsWith("  tenants[1].password-file:", StringComparison.Ordinal));
        Assert.False(Knows(server, "a", "zed"));
        Assert.True(Knows(server, "b", "bob"));
    }

    [Fact]
    public async Task A_missing_file_or_concurrent_reloads_never_throw()
    {
        await using var server = await StartAsync();
        var reloads = Enumerable.Range(0, 8).Select(_ => Task.Run(server.Reload)).ToArray();
        foreach (var r in await Task.WhenAll(reloads)) Assert.Equal(["tenant a: applied", "tenant b: applied"], r);
        File.Delete(_config);
        var report = server.Reload();
        Assert.StartsWith("reload refused", report[0]);
        Assert.True(Knows(server, "a", "alice"));
    }
}

/// <summary>Revocation that sticks: a removed user or a new password ends the user's sessions at the reload.</summary>
public sealed class ReloadRevocationTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Removing_a_user_or_changing_a_password_and_reloading_ends_their_sessions_and_their_cookies()
    {
        var config = _temp.File("isotun.yaml");
        var passwd = _temp.File("a.passwd");
        PasswordFile.SetUser(passwd, "alice", PasswordHasher.Hash("alice-1", 1000));
        PasswordFile.SetUser(passwd, "bob", PasswordHasher.Hash("bob-1", 1000));
        PasswordFile.SetUser(passwd, "carol", PasswordHasher.Hash("carol-1", 1000));
        TestServerConfig.Write(_temp, """
            tenants:
              - name: a
                pool: 10.10.0.0/24
                password-file: a.passwd
            """);
        await using var server = new VpnServer(TestServerConfig.Load(config), NullLoggerFactory.Instance, new MemoryStateStore());
        var tenant = server.Authenticator.Tenants["a"];
        SessionTicket Login(string user)
        {
            Assert.True(tenant.Passwords!.TryGetHash(user, out var hash));
            return server.Sessions.TryCreate(tenant, user, 100, out _, CredentialStamp.ForPassword(hash))!;
        }
        var alice = Login("alice");
        var bob = Login("bob");
        var carol = Login("carol");
        var certificate = server.Sessions.TryCreate(tenant, "dave", 100, out _)!; // no credential to check

        PasswordFile.RemoveUser(passwd, "alice");
        PasswordFile.SetUser(passwd, "bob", PasswordHasher.Hash("bob-2", 1000));
        var report = server.Reload();
        Assert.Contains("2 session(s) ended: their user was removed or given a new password, or their certificate revoked or no longer trusted", report);
        Assert.Null(server.Sessions.TryGet(alice.SessionId));
        Assert.Null(server.Sessions.TryGet(bob.SessionId));
        Assert.NotNull(server.Sessions.TryGet(carol.SessionId));
        Assert.NotNull(server.Sessions.TryGet(certificate.SessionId));
        Assert.True(server.State.IsRevoked(alice.SessionId));
        // The cookies' credentials no longer match, even on a server that restarted and has no session in memory.
        Assert.False(server.CredentialStillValid(tenant, "alice", alice.Credential, DateTimeOffset.UtcNow));
        Assert.False(server.CredentialStillValid(tenant, "bob", bob.Credential, DateTimeOffset.UtcNow));
        Assert.True(server.CredentialStillValid(tenant, "carol", carol.Credential, DateTimeOffset.UtcNow));
    }

    [Fact]
    public async Task A_revoked_user_stays_revoked_across_a_restart_until_enabled()
    {
        var config = _temp.File("isotun.yaml");
        TestServerConfig.Write(_temp, """
            tenants:
              - name: a
                pool: 10.10.0.0/24
            """);
        var serverConfig = TestServerConfig.Load(config);
        Guid first;
        await using (var server = new VpnServer(serverConfig, NullLoggerFactory.Instance, new MemoryStateStore()))
        {
            var tenant = server.Authenticator.Tenants["a"];
            first = server.Sessions.TryCreate(tenant, "mallory", 100, out _)!.SessionId;
            Assert.Equal(1, server.RevokeUser("a", "mallory"));
            Assert.Null(server.Sessions.TryGet(first));
            Assert.False(server.CredentialStillValid(tenant, "mallory", 0, DateTimeOffset.UtcNow));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_temp.File("revoked-users")));
        }
        var beforeEnabling = DateTimeOffset.UtcNow.AddSeconds(-2); // a cookie from before the revocation
        await using (var again = new VpnServer(serverConfig, NullLoggerFactory.Instance, new MemoryStateStore()))
        {
            Assert.True(again.IsRevoked("a", "mallory"));
            Assert.True(again.EnableUser("a", "mallory"));
            Assert.True(again.CredentialStillValid(again.Authenticator.Tenants["a"], "mallory", 0, DateTimeOffset.UtcNow.AddSeconds(1)));
            // Enabled from now: a cookie the revocation did not reach (a laptop asleep, or stolen) stays refused.
            Assert.False(again.CredentialStillValid(again.Authenticator.Tenants["a"], "mallory", 0, beforeEnabling));
        }
        await using (var third = new VpnServer(serverConfig, NullLoggerFactory.Instance, new MemoryStateStore()))
        {
            Assert.False(third.IsRevoked("a", "mallory"));
            Assert.False(third.CredentialStillValid(third.Authenticator.Tenants["a"], "mallory", 0, beforeEnabling)); // after a restart too
            Assert.True(third.CredentialStillValid(third.Authenticator.Tenants["a"], "mallory", 0, DateTimeOffset.UtcNow.AddSeconds(1)));
            Assert.Empty(third.RevokedUsers);
        }
    }
}

/// <summary>A reload adds and removes tenants on a running server; the sessions of a removed tenant end with the reason.</summary>
public sealed class ReloadTenantSetTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private readonly int _port = LoopbackTcp.FreePort();

    private string Yaml(params string[] tenants) =>
        "tenants:\n" + string.Concat(tenants.Select((t, i) => $"  - name: {t}\n    pool: 10.{40 + i}.0.0/24\n"));

    [Fact]
    public async Task Tenants_are_added_and_removed_live_and_the_others_keep_their_sessions()
    {
        var config = TestServerConfig.Write(_temp, Yaml("keep", "gone"), _port);
        var serverConfig = TestServerConfig.Load(config);
        var networks = new Dictionary<string, Isotun.UnitTests.InProcess.MemoryTenantNetwork>();
        await using var server = new VpnServer(serverConfig, NullLoggerFactory.Instance, new MemoryStateStore(),
            networks: tc => networks[tc.Name] = new Isotun.UnitTests.InProcess.MemoryTenantNetwork(tc, uso: true));
        using var stop = new CancellationTokenSource();
        var run = server.RunAsync(stop.Token);
        Assert.True(SpinWait.SpinUntil(() => server.LocalEndpoint is not null, TimeSpan.FromSeconds(10)));
        var keep = server.Sessions.TryCreate(server.Authenticator.Tenants["keep"], "alice", 100, out _)!;
        var gone = server.Sessions.TryCreate(server.Authenticator.Tenants["gone"], "bob", 100, out _)!;

        TestServerConfig.Write(_temp, Yaml("keep", "added"), _port);
        var report = server.Reload();
        Assert.Contains("tenant added: added", report);
        Assert.Contains("tenant gone: removed, 1 session(s) ended", report);
        Assert.Equal(["added", "keep"], server.Authenticator.Tenants.Keys.Order(StringComparer.Ordinal));
        Assert.NotNull(networks["added"].Tun); // its network was set up, as at start
        Assert.True(networks["gone"].TornDown);
        Assert.Null(server.Sessions.TryGet(gone.SessionId));
        Assert.True(server.State.IsRevoked(gone.SessionId));
        Assert.NotNull(server.Sessions.TryGet(keep.SessionId));
        Assert.NotNull(server.Sessions.TryCreate(server.Authenticator.Tenants["added"], "carol", 100, out _));

        // A tenant that cannot be made refuses the whole reload: nothing is added, nothing removed.
        TestServerConfig.Write(_temp, Yaml("keep") + "  - name: broken\n    pool: 10.60.0.0/24\n    password-file: missing.passwd\n", _port);
        Assert.StartsWith("reload refused", server.Reload()[0]);
        Assert.Equal(["added", "keep"], server.Authenticator.Tenants.Keys.Order(StringComparer.Ordinal));
        stop.Cancel();
        await run;
    }
}
