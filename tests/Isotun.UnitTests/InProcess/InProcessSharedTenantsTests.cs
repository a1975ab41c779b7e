using Isotun.State.Cluster;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// <c>cluster.share-tenants</c>: two nodes over one cluster store (SQLite here; the same contract holds on etcd) run
/// the tenants published there, and apply a new publish live as a reload would: whole or not at all, with the last
/// good tenants kept and the refusal shown in the status when a publish does not hold on a node. And what one node
/// does to another's sessions: a kick by id.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessSharedTenantsTests(InProcessPki pki) : IDisposable
{
    private const string Prefix = "/isotun-shared-tenants";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private Task<SharedState> JoinAsync(string node) =>
        SharedState.JoinAsync(new SqliteKeyValueStore(_dir.File("cluster.db")), Prefix, node, 32, NullLogger.Instance);

    private string Tenant(string name, int pool, string extra = "") => $"""
          - name: {name}
            pool: 10.79.{pool}.0/24
            password-file: {pki.Passwords}
            queues: 1
        {extra}
        """;

    /// <summary>Publishes, and waits until <paramref name="via"/> has heard of it through its watch.</summary>
    private static async Task<long> PublishAsync(SharedState via, params string[] tenants)
    {
        long revision = (await SharedTenants.PublishAsync(via.Store, via.Prefix, "tenants:\n" + string.Concat(tenants))).Revision;
        await Eventually.True(() => via.Tenants?.Revision >= revision, $"{via.Node} did not hear of revision {revision}");
        return revision;
    }

    /// <summary>
    /// A kick that lands while a CONNECT waits for its address (a cluster node's claim is a round trip to the store):
    /// the CONNECT finds the session ended once it is attached, and is refused; no tunnel runs for a kicked cookie, and
    /// the address its claim brought back goes back to the pool (the session it was given to had ended).
    /// </summary>
    [Fact]
    public async Task A_kick_while_a_connect_waits_for_its_address_refuses_that_connect()
    {
        var store = new GatedStore(new SqliteKeyValueStore(_dir.File("cluster.db")));
        await using var a = await SharedState.JoinAsync(store, Prefix, "node-a", 32, NullLogger.Instance);
        await PublishAsync(a, Tenant("acme", 0));
        await using var node = await InProcessServer.StartNodeAsync(pki, a, _dir);
        var options = node.Options("acme");
        var cookie = await Isotun.Client.AuthClient.LoginAsync(options, CancellationToken.None);
        var session = Assert.Single(node.Server.Sessions.All);

        store.Close();
        var connecting = RawCstpClient.ConnectAsync(options, cookie);
        Assert.True(await store.Held.WaitAsync(TimeSpan.FromSeconds(30)), "the CONNECT never claimed an address");
        node.Server.Sessions.Kick(session, "kicked while connecting");
        store.Open();

        await using var raw = await connecting;
        Assert.Equal(401, raw.Status);
        Assert.Empty(node.Server.Sessions.All);
        Assert.Equal(0, node.Server.TenantRuntimes.Single().LeasedAddresses);
    }

    /// <summary>
    /// A tunnel up for longer than <c>binding-ttl-days</c> keeps its address: the node's look for unused bindings marks
    /// the bindings of its live sessions as used first, so none of them is old enough to release, whatever the
    /// session lists (which a node that lost its lease for a moment leaves empty) say.
    /// </summary>
    [Fact]
    public async Task A_live_sessions_binding_is_marked_used_before_unused_bindings_are_released()
    {
        await using var a = await JoinAsync("node-a");
        await PublishAsync(a, Tenant("acme", 0));
        await using var node = await InProcessServer.StartNodeAsync(pki, a, _dir);
        await using var client = await InProcessClient.ConnectAsync(node, node.Options("acme"));
        var session = Assert.Single(node.Server.Sessions.All);
        string seen = $"{a.Prefix}ipam/seen/acme/{session.ClusterBinding}";
        var longAgo = DateTimeOffset.UtcNow - TimeSpan.FromDays(400);
        await a.Store.CommitAsync([], [KeyWrite.Put(seen, UnixSeconds.Bytes(longAgo))]);

        await new Isotun.Server.ClusterSessions(node.Server, a, NullLogger.Instance).ExpireBindingsAsync(CancellationToken.None);

        var marked = UnixSeconds.Parse((await a.Store.GetAsync(seen))!.Value.Span);
        Assert.True(marked > DateTimeOffset.UtcNow - TimeSpan.FromMinutes(5), $"the binding was last marked used at {marked:O}");
        Assert.NotNull(await a.Store.GetAsync($"{a.Prefix}ipam/users/acme/{session.ClusterBinding}"));
    }

    /// <summary>A store whose conditional commits (an address claim's) wait while it is closed.</summary>
    private sealed class GatedStore(IKeyValueStore inner) : Isotun.UnitTests.State.Cluster.DelegatingStore(inner)
    {
        private volatile TaskCompletionSource? _gate;

        public SemaphoreSlim Held { get; } = new(0);

        public void Close() => _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Open() => Interlocked.Exchange(ref _gate, null)?.TrySetResult();

        public override async Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default)
        {
            if (conditions.Count > 0 && _gate is { } gate)
            {
                Held.Release();
                await gate.Task.WaitAsync(ct);
            }
            return await base.CommitAsync(conditions, writes, ct);
        }
    }

    /// <summary>Nodes a and b over one store, running the tenant acme published through a (revision First).</summary>
    private async Task<TwoNodes> TwoNodesAsync()
    {
        var a = await JoinAsync("node-a");
        var b = await JoinAsync("node-b");
        long first = await PublishAsync(a, Tenant("acme", 0));
        await Eventually.True(() => b.Tenants?.Revision == first, "node b did not hear of the tenants");
        return new TwoNodes(a, b, first, await InProcessServer.StartNodeAsync(pki, a, _dir), await InProcessServer.StartNodeAsync(pki, b, _dir));
    }

    private sealed record TwoNodes(SharedState A, SharedState B, long First, InProcessServer NodeA, InProcessServer NodeB) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await NodeB.DisposeAsync();
            await NodeA.DisposeAsync();
            await B.DisposeAsync();
            await A.DisposeAsync();
        }
    }

    private static IEnumerable<string> Names(InProcessServer node) => node.Server.TenantRuntimes.Select(t => t.Name).Order(StringComparer.Ordinal);

    /// <summary>
    /// A kick on one node of another node's session by its full id: a mistyped id is 404 (it was "kicked", and a revocation
    /// written for it, while the real session went on); the listed one ends on its node.
    /// </summary>
    [Fact]
    public async Task A_kick_of_an_id_no_node_lists_is_refused_and_one_of_another_nodes_session_ends_it()
    {
        await using var two = await TwoNodesAsync();
        var (a, b, first, nodeA, nodeB) = (two.A, two.B, two.First, two.NodeA, two.NodeB);
        await using var client = await InProcessClient.ConnectAsync(nodeA, nodeA.Options("acme"));
        string id = nodeA.Server.Sessions.All.Single().Id.ToString("N");
        var socket = _dir.File("b-admin.sock");
        await using var api = await Isotun.Admin.AdminApi.StartAsync(nodeB.Server, new Isotun.Server.Configuration.AdminConfig(null) { Socket = socket }, NullLoggerFactory.Instance);
        using var admin = new Isotun.Admin.AdminClient(socket);
        Assert.True(await Eventually.Holds(async () => (await admin.GetAsync("api/v1/sessions?scope=cluster")).Text.Contains(id), TimeSpan.FromSeconds(15)), "node b does not list node a's session");

        var typo = await admin.DeleteAsync($"api/v1/sessions/{Guid.NewGuid():N}");
        Assert.Equal(404, typo.Status);
        Assert.Contains("on any node", typo.Error);
        Assert.Equal(0, b.Status.PendingWrites);

        Assert.Equal(200, (await admin.DeleteAsync($"api/v1/sessions/{id}")).Status);
        await Eventually.True(() => nodeA.Server.Sessions.Count == 0, "node a's session did not end after the kick on node b");
    }

    /// <summary>
    /// Each node reads its own CRL file. One node's CRL revokes a certificate (a reload there): the other node, whose
    /// file does not list it yet, ends the certificate's session at once, refuses its cookie and a new login with it.
    /// </summary>
    [Fact]
    public async Task A_certificate_one_nodes_crl_revokes_ends_its_session_on_another_node_and_is_refused_there()
    {
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        File.WriteAllBytes(dirA.File("revoked.crl"), Crl());
        File.WriteAllBytes(dirB.File("revoked.crl"), Crl());
        await using var a = await JoinAsync("node-a");
        await using var b = await JoinAsync("node-b");
        long first = await PublishAsync(a, Tenant(InProcessPki.CertOu, 0, $"    allowed-ous: [{InProcessPki.CertOu}]\n    client-crl: revoked.crl\n"));
        await Eventually.True(() => b.Tenants?.Revision == first, "node b did not hear of the tenants");
        // Node a need not listen: what matters is its reload (SIGHUP), which reads its CRL again.
        await using var nodeA = new Isotun.Server.VpnServer(Isotun.Server.Configuration.ServerConfigLoader.Load(InProcessServer.WriteNodeConfig(pki, "node-a", dirA)).Config!,
            NullLoggerFactory.Instance, new Isotun.State.MemoryStateStore(), networks: tc => new MemoryTenantNetwork(tc, uso: true), shared: a);
        await using var nodeB = await InProcessServer.StartNodeAsync(pki, b, dirB);
        var options = nodeB.Options(InProcessPki.CertOu, user: null, password: null) with { CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey };
        await using var client = await InProcessClient.ConnectAsync(nodeB, options, tenant: InProcessPki.CertOu);
        var session = Assert.Single(nodeB.Server.Sessions.All);

        using var certificate = Isotun.Pki.PemLoader.LoadBundle(pki.ClientCertificate)[0];
        File.WriteAllBytes(dirA.File("revoked.crl"), Crl(certificate.SerialNumber));
        Assert.Equal([$"tenant {InProcessPki.CertOu}: applied"], nodeA.Reload());

        await Eventually.True(() => nodeB.Server.Sessions.Count == 0, "the session on node b did not end");
        // A cookie of that certificate, from a login just now (on any node), is refused here too: by the shared list alone.
        Assert.False(nodeB.Server.CredentialStillValid(session.Tenant, session.User, session.Credential, DateTimeOffset.UtcNow));
        Assert.False(nodeB.Server.TenantRuntimes.Single().RevokedCertificates.IsRevoked(certificate.SerialNumber)); // its own file still does not list it
        var refused = await Assert.ThrowsAsync<Isotun.Client.ClientException>(() => Isotun.Client.AuthClient.LoginAsync(options, CancellationToken.None));
        Assert.Equal(Isotun.Client.ClientExitCode.AuthFailed, refused.Code);

        // Node c's CRL lists it too (a copy of a's). Node a takes it out of its CRL and reloads: it takes back what it
        // shared, and node c, whose CRL still lists it, shares it again by itself.
        using var dirC = new TempDirectory();
        File.Copy(dirA.File("revoked.crl"), dirC.File("revoked.crl"));
        await using var c = await JoinAsync("node-c");
        await Eventually.True(() => c.Tenants?.Revision == first, "node c did not hear of the tenants");
        await using var nodeC = new Isotun.Server.VpnServer(Isotun.Server.Configuration.ServerConfigLoader.Load(InProcessServer.WriteNodeConfig(pki, "node-c", dirC)).Config!,
            NullLoggerFactory.Instance, new Isotun.State.MemoryStateStore(), networks: tc => new MemoryTenantNetwork(tc, uso: true), shared: c);
        File.WriteAllBytes(dirA.File("revoked.crl"), Crl());
        Assert.Equal([$"tenant {InProcessPki.CertOu}: applied"], nodeA.Reload());
        string key = $"{a.Prefix.TrimEnd('/')}/revoked-certificates/{InProcessPki.CertOu}/{Isotun.Security.CredentialStamp.Normalize(certificate.SerialNumber)}";
        await Eventually.True(() => a.Store.GetAsync(key).GetAwaiter().GetResult() is { } entry && System.Text.Encoding.UTF8.GetString(entry.Value.Span) == "node-c",
            "node c did not share it again");
        await Eventually.True(() => b.IsCertificateRevoked(InProcessPki.CertOu, certificate.SerialNumber), "node b does not refuse it");
    }

    /// <summary>A CRL listing <paramref name="serials"/>, signed by a throwaway CA (a CRL file is configuration: its signature is not checked).</summary>
    private static byte[] Crl(params string[] serials)
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=crl test", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var builder = new System.Security.Cryptography.X509Certificates.CertificateRevocationListBuilder();
        foreach (var serial in serials) builder.AddEntry(Convert.FromHexString(serial));
        return builder.Build(ca, 1, DateTimeOffset.UtcNow.AddDays(1), System.Security.Cryptography.HashAlgorithmName.SHA256);
    }

    [Fact]
    public async Task Every_node_runs_the_published_tenants_and_applies_a_new_publish_live_keeping_live_sessions()
    {
        await using var two = await TwoNodesAsync();
        var (a, b, first, nodeA, nodeB) = (two.A, two.B, two.First, two.NodeA, two.NodeB);
        Assert.Equal(["acme"], Names(nodeA));
        Assert.Equal(["acme"], Names(nodeB));
        Assert.Equal(new Isotun.Server.SharedTenantsView(first, first, null), nodeB.Server.SharedTenantsStatus);

        await using var client = await InProcessClient.ConnectAsync(nodeA, nodeA.Options("acme"));
        client.RoundTrip(nodeA);

        // A second tenant and a new DNS server for the first: both nodes apply it, and the live session goes on.
        long second = await PublishAsync(b, Tenant("acme", 0, "    dns: [198.18.0.53]\n"), Tenant("globex", 1));
        foreach (var node in new[] { nodeA, nodeB })
        {
            await Eventually.True(() => node.Server.SharedTenantsStatus is { Applied: var applied } && applied == second, $"{node.Server.Shared!.Node} did not apply the publish");
            Assert.Equal(["acme", "globex"], Names(node));
            Assert.Equal("198.18.0.53", node.Server.TenantRuntimes.Single(t => t.Name == "acme").Config.Dns.Single().ToString());
            Assert.False(node.Server.SharedTenantsStatus!.Stale);
        }
        client.RoundTrip(nodeA);
        await using var joined = await InProcessClient.ConnectAsync(nodeB, nodeB.Options("globex"), tenant: "globex");
        joined.RoundTrip(nodeB, tenant: "globex");

        // Without globex: its sessions end on its node, acme's go on.
        long third = await PublishAsync(a, Tenant("acme", 0, "    dns: [198.18.0.53]\n"));
        await Eventually.True(() => nodeB.Server.SharedTenantsStatus?.Applied == third && nodeA.Server.SharedTenantsStatus?.Applied == third, "the nodes did not apply the removal");
        Assert.Equal(["acme"], Names(nodeB));
        await Eventually.True(() => nodeB.Server.Sessions.Count == 0, "globex's session did not end with its tenant");
        client.RoundTrip(nodeA);
    }

    [Fact]
    public async Task A_publish_that_does_not_hold_on_a_node_is_refused_there_with_every_error_and_the_last_good_tenants_stay()
    {
        await using var a = await JoinAsync("node-a");
        long good = await PublishAsync(a, Tenant("acme", 0));
        await using var node = await InProcessServer.StartNodeAsync(pki, a, _dir);
        await using var client = await InProcessClient.ConnectAsync(node, node.Options("acme"));

        // Checked where it was pushed, but a file it names is missing on this node; and a new pool, which the nodes of
        // a cluster share in blocks (it takes a restart of every node): both leave the running tenants as they were.
        long missing = await PublishAsync(a, Tenant("acme", 0), Tenant("globex", 1).Replace(pki.Passwords, _dir.File("absent.passwd")));
        await Eventually.True(() => node.Server.SharedTenantsStatus is { Published: var p, Error: not null } && p == missing, "the node did not report the refusal");
        var status = node.Server.SharedTenantsStatus!;
        Assert.True(status.Stale);
        Assert.Equal(good, status.Applied);
        Assert.Contains("tenants[1].password-file", status.Error);
        Assert.Contains("absent.passwd", status.Error);
        Assert.Equal(["acme"], Names(node));

        long moved = await PublishAsync(a, Tenant("acme", 5));
        await Eventually.True(() => node.Server.SharedTenantsStatus?.Published == moved && node.Server.SharedTenantsStatus.Error?.Contains("restart every node", StringComparison.Ordinal) == true,
            "the node did not refuse a new pool");
        Assert.Equal("10.79.0.0/24", node.Server.TenantRuntimes.Single().Pool.ToString());
        client.RoundTrip(node);

        // A publish that holds clears the refusal.
        long fixedUp = await PublishAsync(a, Tenant("acme", 0), Tenant("globex", 1));
        await Eventually.True(() => node.Server.SharedTenantsStatus is { Stale: false, Error: null, Applied: var applied } && applied == fixedUp, "the node did not apply the good publish");
        Assert.Equal(["acme", "globex"], Names(node));
    }

    [Fact]
    public async Task A_reload_of_a_nodes_own_file_applies_its_settings_and_keeps_the_clusters_tenants()
    {
        await using var a = await JoinAsync("node-a");
        await PublishAsync(a, Tenant("acme", 0));
        var path = InProcessServer.WriteNodeConfig(pki, "node-a", _dir);
        await using var server = new Isotun.Server.VpnServer(Isotun.Server.Configuration.ServerConfigLoader.Load(path).Config!, NullLoggerFactory.Instance,
            new Isotun.State.MemoryStateStore(), networks: tc => new MemoryTenantNetwork(tc, uso: true), shared: a);

        InProcessServer.WriteNodeConfig(pki, "node-a", _dir, "limits:\n  per-source-connections: 7\n");
        Assert.Equal(["tenant acme: applied"], server.Reload());
        Assert.Equal(7, server.Config.Limits.PerSourceConnections);
        Assert.Equal(["acme"], server.TenantRuntimes.Select(t => t.Name));
    }

    [Fact]
    public async Task A_node_sharing_tenants_does_not_start_before_any_were_published_and_says_how_to_publish_them()
    {
        await using var a = await JoinAsync("node-a");
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => InProcessServer.StartNodeAsync(pki, a, _dir));
        Assert.Contains("isotun cluster push-tenants", failure.Message);
    }
}
