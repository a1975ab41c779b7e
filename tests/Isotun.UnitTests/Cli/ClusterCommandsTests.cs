using System.CommandLine;
using Isotun.Cli;
using Isotun.UnitTests.InProcess;
using Isotun.UnitTests.Security;
using Isotun.UnitTests.State.Cluster;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// <c>isotun cluster push-tenants</c> and <c>show-tenants</c> against a real etcd (skipped, with the reason, where etcd
/// is not installed): a file is checked before anything is published, a publish that lost a race is refused, and what
/// was published reads back as it was written.
/// </summary>
[Collection(EtcdCollection.Name)]
public sealed class ClusterCommandsTests(EtcdServer etcd) : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly InProcessPki _pki = new();

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    private string Node(string etcdUrl, bool cluster = true)
    {
        var path = _dir.File("node-1.yaml");
        File.WriteAllText(path, $"""
            listen: 127.0.0.1:4443
            tls:
              certificate: {_pki.ServerCertificate}
              key: {_pki.ServerKey}
            state: {_dir.File("state.db")}
            {(cluster ? $"cluster: {{etcd: [{etcdUrl}], node: node-1, prefix: /cli-{Guid.NewGuid():N}, share-tenants: true}}" : $"tenants: [{{name: acme, pool: 10.79.0.0/24, password-file: {_pki.Passwords}}}]")}

            """);
        return path;
    }

    private string Tenants(string yaml)
    {
        var path = _dir.File($"tenants-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private string Acme(string name = "acme") => $"tenants:\n  - name: {name}\n    pool: 10.79.0.0/24\n    password-file: {_pki.Passwords}\n";

    private static async Task<(int Code, string Out, string Error)> RunAsync(params string[] args)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        int code = await IsotunCli.RunAsync(args, new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [SkippableFact]
    public async Task A_checked_file_is_published_and_reads_back_and_a_bad_one_publishes_nothing_with_every_error()
    {
        Skip.If(etcd.SkipReason is not null, etcd.SkipReason);
        var node = Node(etcd.Endpoint);

        var bad = await RunAsync("cluster", "push-tenants", Tenants("tenants:\n  - name: acme\n    pool: 10.79.0.1/24\n  - name: acme\n    pool: 10.80.0.0/24\n"), "--config", node);
        Assert.Equal(2, bad.Code);
        Assert.Contains("nothing was published", bad.Error);
        Assert.Contains("tenants[0].pool: host bits are set", bad.Error);
        Assert.Contains("tenants[1].name: duplicate tenant name 'acme'", bad.Error);
        var none = await RunAsync("cluster", "show-tenants", "--config", node);
        Assert.Equal(1, none.Code);
        Assert.Contains("no tenants were published", none.Error);

        var dry = await RunAsync("cluster", "push-tenants", Tenants(Acme()), "--config", node, "--dry-run");
        Assert.Equal((0, true), (dry.Code, dry.Out.Contains("nothing was published (--dry-run)", StringComparison.Ordinal)));
        Assert.Equal(1, (await RunAsync("cluster", "show-tenants", "--config", node)).Code);

        var pushed = await RunAsync("cluster", "push-tenants", Tenants(Acme()), "--config", node);
        Assert.True(pushed.Code == 0, pushed.Error);
        var revision = System.Text.RegularExpressions.Regex.Match(pushed.Out, @"published 1 tenant\(s\) \(acme\) at revision (\d+)").Groups[1].Value;
        Assert.NotEmpty(revision);
        var shown = await RunAsync("cluster", "show-tenants", "--config", node);
        Assert.Equal(0, shown.Code);
        Assert.Equal($"# revision {revision}\n{Acme()}", shown.Out);
    }

    [SkippableFact]
    public async Task A_push_that_expects_a_revision_no_longer_current_is_refused_and_changes_nothing()
    {
        Skip.If(etcd.SkipReason is not null, etcd.SkipReason);
        var node = Node(etcd.Endpoint);
        var first = await RunAsync("cluster", "push-tenants", Tenants(Acme()), "--config", node, "--expect-revision", "0");
        Assert.True(first.Code == 0, first.Error);
        var revision = System.Text.RegularExpressions.Regex.Match(first.Out, @"at revision (\d+)").Groups[1].Value;

        // Only if nothing was published: too late now.
        var again = await RunAsync("cluster", "push-tenants", Tenants(Acme("globex")), "--config", node, "--expect-revision", "0");
        Assert.Equal(3, again.Code);
        Assert.Contains($"of revision {revision}, not of revision 0", again.Error);

        var next = await RunAsync("cluster", "push-tenants", Tenants(Acme("globex")), "--config", node, "--expect-revision", revision);
        Assert.True(next.Code == 0, next.Error);
        var stale = await RunAsync("cluster", "push-tenants", Tenants(Acme("initech")), "--config", node, "--expect-revision", revision);
        Assert.Equal(3, stale.Code);
        Assert.Contains("name: globex", (await RunAsync("cluster", "show-tenants", "--config", node)).Out);
    }

    [SkippableFact]
    public async Task A_node_without_a_cluster_or_without_etcd_says_so()
    {
        Skip.If(etcd.SkipReason is not null, etcd.SkipReason);
        var alone = await RunAsync("cluster", "show-tenants", "--config", Node(etcd.Endpoint, cluster: false));
        Assert.Equal(2, alone.Code);
        Assert.Contains("has no cluster section", alone.Error);

        var away = await RunAsync("cluster", "push-tenants", Tenants(Acme()), "--config", Node("http://127.0.0.1:1"));
        Assert.Equal(1, away.Code);
        Assert.Contains("cannot be reached", away.Error);
        Assert.Contains("127.0.0.1:1", away.Error);
    }
}
