using Isotun.Config;
using Isotun.Security;
using Isotun.Server;
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

    private void Write(string poolB, string extraLimits = "") => File.WriteAllText(_config, $"""
        listen: 127.0.0.1:4443
        tls:
          certificate: pki/server.crt
          key: pki/server.key
        admin:
          listen: off
        limits:
          max-sessions: 100{extraLimits}
        tenants:
          - name: a
            pool: 10.10.0.0/24
            password-file: a.passwd
          - name: b
            pool: {poolB}
            password-file: b.passwd
        """);

    private async Task<VpnServer> StartAsync()
    {
        var loaded = ServerConfigLoader.Load(_config);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        await Task.CompletedTask;
        return new VpnServer(loaded.Config!, NullLoggerFactory.Instance, new MemoryStateStore());
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
        // tenant a gets a new user (applicable), tenant b a new pool (needs a restart): nothing at all is applied.
        PasswordFile.SetUser(_temp.File("a.passwd"), "zed", PasswordHasher.Hash("zed-secret", 1000));
        Write(poolB: "10.21.0.0/24", extraLimits: "\n  per-source-connections: 7");
        var report = server.Reload();
        Assert.StartsWith("reload refused, 1 change(s) cannot be applied live; nothing was applied", report[0]);
        Assert.Contains("  tenant b: changed pool: restart the server to apply", report);
        Assert.False(Knows(server, "a", "zed"));
        Assert.Equal(LimitsConfig.DefaultPerSourceConnections, server.Config.Limits.PerSourceConnections);
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
