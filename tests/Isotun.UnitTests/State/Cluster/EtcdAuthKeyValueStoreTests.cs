using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Isotun.State.Cluster;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A real etcd with authentication on, set up as an operator would with etcdctl: a root user, and a user "isotun" whose
/// role may read and write the keys under <see cref="Prefix"/> only.
/// </summary>
public sealed class EtcdAuthServer : IAsyncLifetime
{
    public const string User = "isotun", Password = "etcd-password-for-isotun", Prefix = "/t";
    private readonly EtcdServer _etcd = new();

    public string? SkipReason => _etcd.SkipReason;
    public string Endpoint => _etcd.Endpoint;

    /// <summary>A client logged in as <paramref name="user"/> with <paramref name="password"/> (none: no login).</summary>
    public EtcdKeyValueStore Connect(string? user = User, string password = Password)
    {
        Skip.If(SkipReason is not null, SkipReason);
        return new EtcdKeyValueStore(Endpoint, credentials: user is null ? null : new EtcdCredentials(user, password));
    }

    public async Task InitializeAsync()
    {
        await _etcd.InitializeAsync();
        if (SkipReason is not null) return;
        using var admin = new EtcdClient(Endpoint);
        await admin.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "root-password" });
        await admin.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" });
        await admin.RoleAddAsync(new AuthRoleAddRequest { Name = User });
        await admin.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest
        {
            Name = User,
            Perm = new Authpb.Permission
            {
                PermType = Authpb.Permission.Types.Type.Readwrite,
                Key = ByteString.CopyFromUtf8(Prefix + "/"),
                RangeEnd = ByteString.CopyFromUtf8(Prefix + "0"), // '0' follows '/': every key under the prefix
            },
        });
        await admin.UserAddAsync(new AuthUserAddRequest { Name = User, Password = Password });
        await admin.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = User, Role = User });
        await admin.AuthEnableAsync(new AuthEnableRequest());
    }

    public Task DisposeAsync() => _etcd.DisposeAsync();
}

/// <summary>
/// The key-value store contract on an etcd with authentication on, logged in as a user whose role holds only the
/// cluster's prefix; and what a node is told when its login is missing, wrong, or lacks the rights.
/// </summary>
public sealed class EtcdAuthKeyValueStoreTests(EtcdAuthServer etcd) : KeyValueStoreContract, IClassFixture<EtcdAuthServer>
{
    protected override IKeyValueStore Connect() => etcd.Connect();

    // The contract's keys live under a prefix of their own; here they must be under the role's.
    protected override string KeyPrefix => $"{EtcdAuthServer.Prefix}/test-{Guid.NewGuid():N}/";

    [SkippableFact]
    public async Task Without_a_login_the_error_says_that_etcd_wants_one()
    {
        await using var store = etcd.Connect(user: null);
        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));
        Assert.Contains("logs in as no user (cluster.auth)", e.Message);
    }

    [SkippableFact]
    public async Task A_wrong_password_is_refused_and_never_shown()
    {
        await using var store = etcd.Connect(password: "not-the-password");
        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync(P + "k"));
        Assert.Contains($"etcd refused etcd user {EtcdAuthServer.User}", e.Message);
        Assert.DoesNotContain("not-the-password", e.ToString());
    }

    [SkippableFact]
    public async Task A_key_outside_the_users_role_is_refused_with_the_reason()
    {
        await using var store = etcd.Connect();
        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.GetAsync("/elsewhere/k"));
        Assert.Contains("lacks a role that may read and write the cluster's prefix", e.Message);
    }

    [SkippableFact]
    public async Task Nodes_logged_in_share_state_through_it()
    {
        await using var a = await SharedState.JoinAsync(etcd.Connect(), $"{EtcdAuthServer.Prefix}/shared-{Guid.NewGuid():N}", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(etcd.Connect(), a.Prefix, "node-b", 32, NullLogger.Instance);
        Assert.Equal(a.CookieKeys.ToBytes(), b.CookieKeys.ToBytes());
        Assert.True(a.RevokeUser("acme", "alice"));
        await Eventually.True(() => b.IsUserRevoked("acme", "alice"), "node b did not see the revocation through its watch");
    }
}
