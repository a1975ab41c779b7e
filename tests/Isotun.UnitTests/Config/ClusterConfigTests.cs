using Isotun.Config;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Config;

/// <summary>The optional cluster section: read in canonical form, and every fault listed with its path.</summary>
public sealed class ClusterConfigTests
{
    private static ConfigLoadResult Parse(string cluster)
    {
        using var temp = new TempDirectory();
        return ServerConfigLoader.Parse(cluster + "tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n", temp.File("isotun.yaml"));
    }

    [Fact]
    public void Without_a_cluster_section_the_server_runs_on_its_own()
    {
        var result = Parse("");
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Null(result.Config!.Cluster);
    }

    [Fact]
    public void A_cluster_section_is_read_with_the_default_prefix()
    {
        var result = Parse("cluster:\n  etcd: [http://10.0.0.5:2379, \"https://etcd.example:2379/\"]\n  node: node-1\n");
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(new[] { "http://10.0.0.5:2379", "https://etcd.example:2379" }, result.Config!.Cluster!.Etcd);
        Assert.Equal("node-1", result.Config.Cluster.Node);
        Assert.Equal("/isotun", result.Config.Cluster.Prefix);
    }

    [Fact]
    public void Every_fault_is_listed()
    {
        var errors = Parse("cluster:\n  etcd: [\"ftp://x:1\", \"http://user:pw@h:2379\", \"http://h:2379/v3\"]\n  node: Node_1\n  prefix: isotun/\n  extra: 1\n")
            .Errors.Select(e => e.ToString()).ToList();
        Assert.Contains("cluster.etcd[0]: must be an etcd client URL such as http://10.0.0.5:2379", errors);
        Assert.Contains("cluster.etcd[1]: must be an etcd client URL such as http://10.0.0.5:2379", errors);
        Assert.Contains("cluster.etcd[2]: must be an etcd client URL such as http://10.0.0.5:2379", errors);
        Assert.Contains("cluster.node: must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit", errors);
        Assert.Contains("cluster.prefix: must start with '/', not end with one, and be at most 128 printable characters, e.g. /isotun", errors);
        Assert.Contains(errors, e => e.StartsWith("cluster.extra:", StringComparison.Ordinal));
        Assert.Equal(
            ["cluster.etcd: required: the etcd client URLs, e.g. [http://10.0.0.5:2379]", "cluster.node: required: this node's name, unique in the cluster"],
            Parse("cluster:\n  prefix: /x\n").Errors.Select(e => e.ToString()));
    }
}
