using Isotun.Protocol.Addressing;
using Isotun.Security;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.UnitTests.Core.Logs;
using Isotun.UnitTests.InProcess;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A tenant's password file deleted while the server runs: the users read last stay in force, and the log says once
/// that the file is gone; a file that comes back is read again.
/// </summary>
public sealed class PasswordFileWatchTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_deleted_password_file_is_reported_once_and_the_users_read_last_stay()
    {
        var file = _dir.File("users.passwd");
        PasswordFile.SetUser(file, "alice", PasswordHasher.Hash("alice-secret", PasswordHasher.MinIterations));
        var config = new TenantConfig("pwwatch", IpNetwork.Parse("10.10.0.0/24"), [], [], 1400, 30, 30, file, "isotun-pw") { Queues = 1 };
        var log = new RecordingLogger();
        using var tenant = new TenantRuntime(config, new MemoryStateStore(), log, network: new MemoryTenantNetwork(config, uso: true));

        File.Delete(file);
        Assert.False(tenant.RefreshPasswords());
        Assert.False(tenant.RefreshPasswords());
        Assert.Single(log.Lines, l => l.Text.Contains($"password file {file} is gone"));
        Assert.True(tenant.Passwords!.TryGetHash("alice", out _));

        PasswordFile.SetUser(file, "bob", PasswordHasher.Hash("bob-secret", PasswordHasher.MinIterations));
        Assert.True(tenant.RefreshPasswords());
        Assert.True(tenant.Passwords!.TryGetHash("bob", out _));
        Assert.False(tenant.Passwords!.TryGetHash("alice", out _));
    }
}
