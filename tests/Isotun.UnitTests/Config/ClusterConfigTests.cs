using Isotun.Pki;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Config;

/// <summary>The optional cluster section: read in canonical form, and every fault listed with its path.</summary>
public sealed class ClusterConfigTests : IDisposable
{
    // Next to the configuration file, as isotun pki writes them: pki/ca.crt, and the client's pki/cluster-node-1.crt
    // and .key (0600).
    private readonly TempDirectory _temp = new();
    private readonly PkiDirectory _pki;
    private readonly IssuedCertificate _client;

    public ClusterConfigTests()
    {
        _pki = new PkiDirectory(_temp.File("pki"));
        _pki.InitCa();
        _client = _pki.IssueClient("cluster", "node-1");
    }

    public void Dispose() => _temp.Dispose();

    private ConfigLoadResult Parse(string cluster) =>
        ServerConfigLoader.Parse(cluster + "tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n", _temp.File("isotun.yaml"));

    private List<string> Errors(string cluster) => Parse(cluster).Errors.Select(e => e.ToString()).ToList();

    private const string Https = "cluster:\n  etcd: [https://10.0.0.5:2379, https://10.0.0.6:2379]\n  node: node-1\n";

    [Theory]
    [InlineData("", 30)]
    [InlineData("  binding-ttl-days: 7\n", 7)]
    public void Unused_address_bindings_expire_after_30_days_or_as_configured(string line, int days)
    {
        var result = Parse("cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n" + line);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(TimeSpan.FromDays(days), result.Config!.Cluster!.BindingTtl);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("3651")]
    [InlineData("forever")]
    public void A_binding_ttl_out_of_range_is_refused(string value) =>
        Assert.Contains(Errors($"cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n  binding-ttl-days: {value}\n"), e => e.StartsWith("cluster.binding-ttl-days", StringComparison.Ordinal));

    private const string Shared = "cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n  share-tenants: true\n";

    [Fact]
    public void With_shared_tenants_the_file_holds_none_and_one_that_does_is_refused_with_the_way_to_publish_them()
    {
        var result = ServerConfigLoader.Parse(Shared, _temp.File("isotun.yaml"));
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.True(result.Config!.Cluster!.ShareTenants);
        Assert.Empty(result.Config.Tenants);

        var both = Errors(Shared);
        Assert.Contains(both, e => e.StartsWith("tenants:", StringComparison.Ordinal) && e.Contains("isotun cluster push-tenants", StringComparison.Ordinal));
        Assert.False(Parse("cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n").Config!.Cluster!.ShareTenants);
    }

    [Fact]
    public void A_shared_tenants_document_is_read_against_the_nodes_own_directory()
    {
        File.WriteAllText(_temp.File("acme.passwd"), "");
        var read = ServerConfigLoader.ParseTenants("tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n    password-file: acme.passwd\n", _temp.File("node-1.yaml"));
        Assert.True(read.Ok, string.Join("\n", read.Errors));
        Assert.Equal(_temp.File("acme.passwd"), read.Tenants!.Single().PasswordFile);
    }

    [Theory]
    [InlineData("", "tenants: at least one tenant is required")]
    [InlineData("tenants: []\n", "tenants: at least one tenant is required")]
    [InlineData("listen: 0.0.0.0:443\ntenants:\n  - name: acme\n    pool: 10.10.0.0/24\n", "listen: unknown key")]
    [InlineData("tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n    password-file: absent.passwd\n", "tenants[0].password-file")]
    [InlineData("tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n  - name: acme\n    pool: 10.10.0.0/24\n", "duplicate tenant name")]
    [InlineData("- acme\n", "expected a mapping")]
    public void A_shared_tenants_document_with_faults_lists_them(string yaml, string expected)
    {
        var read = ServerConfigLoader.ParseTenants(yaml, _temp.File("node-1.yaml"));
        Assert.False(read.Ok);
        Assert.Contains(read.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_shared_tenants_document_larger_than_one_store_value_is_refused()
    {
        var read = ServerConfigLoader.ParseTenants("# " + new string('x', ServerConfigLoader.MaxSharedTenantsBytes) + "\ntenants: []\n", _temp.File("node-1.yaml"));
        Assert.Contains("64 KiB", Assert.Single(read.Errors).ToString());
    }

    [Fact]
    public void On_a_cluster_node_pool6_must_hold_as_many_addresses_as_pool()
    {
        const string Tenant = "tenants:\n  - name: acme\n    pool: 10.10.0.0/23\n    pool6: fd00:10::/{0}\n";
        const string Cluster = "cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n";
        Assert.True(ServerConfigLoader.Parse(Cluster + string.Format(Tenant, 119), _temp.File("isotun.yaml")).Ok);
        var errors = ServerConfigLoader.Parse(Cluster + string.Format(Tenant, 120), _temp.File("isotun.yaml")).Errors.Select(e => e.ToString()).ToList();
        Assert.Contains(errors, e => e.StartsWith("tenants[0].pool6:", StringComparison.Ordinal) && e.Contains("/119 or shorter", StringComparison.Ordinal));
        // Alone, a server hands out IPv6 addresses of its own: any pool6 will do.
        Assert.True(ServerConfigLoader.Parse(string.Format(Tenant, 120), _temp.File("isotun.yaml")).Ok);
        Assert.Contains(ServerConfigLoader.ParseTenants(string.Format(Tenant, 120), _temp.File("isotun.yaml")).Errors, e => e.Path == "tenants[0].pool6");
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
        var result = Parse("cluster:\n  etcd: [http://10.0.0.5:2379, \"http://etcd.example:2379/\"]\n  node: node-1\n");
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(new[] { "http://10.0.0.5:2379", "http://etcd.example:2379" }, result.Config!.Cluster!.Etcd);
        Assert.Equal("node-1", result.Config.Cluster.Node);
        Assert.Equal("/isotun", result.Config.Cluster.Prefix);
        Assert.Null(result.Config.Cluster.Tls);
    }

    [Fact]
    public void Tls_to_etcd_is_read_with_its_paths_resolved_next_to_the_configuration()
    {
        var result = Parse(Https + "  tls:\n    ca: pki/ca.crt\n    certificate: pki/cluster-node-1.crt\n    key: pki/cluster-node-1.key\n");

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(new ClusterTlsConfig(_pki.CaCertificatePath, _client.CertificatePath, _client.KeyPath), result.Config!.Cluster!.Tls);
        Assert.Equal(new[] { "https://10.0.0.5:2379", "https://10.0.0.6:2379" }, result.Config.Cluster.Etcd);
    }

    [Fact]
    public void Tls_without_a_client_certificate_is_read()
    {
        var result = Parse(Https + "  tls:\n    ca: pki/ca.crt\n");

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(new ClusterTlsConfig(_pki.CaCertificatePath, null, null), result.Config!.Cluster!.Tls);
    }

    [Theory]
    [InlineData("", "cluster.tls.ca: required for https:// endpoints: the PEM file of the CA that signs etcd's certificate (the system's trust store is not used)")]
    [InlineData("  tls:\n    certificate: pki/cluster-node-1.crt\n    key: pki/cluster-node-1.key\n",
        "cluster.tls.ca: required for https:// endpoints: the PEM file of the CA that signs etcd's certificate (the system's trust store is not used)")]
    [InlineData("  tls:\n    ca: pki/ca.crt\n    certificate: pki/cluster-node-1.crt\n", "cluster.tls.key: required when cluster.tls.certificate is set")]
    [InlineData("  tls:\n    ca: pki/ca.crt\n    key: pki/cluster-node-1.key\n", "cluster.tls.certificate: required when cluster.tls.key is set")]
    [InlineData("  tls:\n    ca: pki/ca.crt\n    certficate: pki/cluster-node-1.crt\n", "cluster.tls.certficate: unknown key; did you mean 'certificate'?")]
    [InlineData("  tls: pki/ca.crt\n", "cluster.tls: expected a mapping, found a scalar")]
    public void A_tls_fault_is_listed_with_its_path(string tls, string expected)
    {
        Assert.Contains(expected, Errors(Https + tls));
    }

    [Fact]
    public void Missing_tls_files_are_each_listed()
    {
        var errors = Errors(Https + "  tls:\n    ca: no/ca.crt\n    certificate: no/node.crt\n    key: no/node.key\n");

        Assert.Equal(
            [$"cluster.tls.ca: file not found: {_temp.File("no/ca.crt")}", $"cluster.tls.certificate: file not found: {_temp.File("no/node.crt")}",
                $"cluster.tls.key: file not found: {_temp.File("no/node.key")}"],
            errors);
    }

    [Fact]
    public void Tls_files_that_do_not_parse_or_do_not_match_are_refused()
    {
        File.WriteAllText(_temp.File("garbage.crt"), "not a certificate\n");
        var other = _pki.IssueClient("cluster", "node-2");

        var errors = Errors(Https + $"  tls:\n    ca: garbage.crt\n    certificate: {other.CertificatePath}\n    key: pki/cluster-node-1.key\n");

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("cluster.tls.ca: ", StringComparison.Ordinal) && e.Contains("no certificate found", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("cluster.tls.certificate: ", StringComparison.Ordinal) && e.Contains("does not match the public key", StringComparison.Ordinal));
    }

    [Fact]
    public void A_client_key_that_group_or_others_can_read_is_refused()
    {
        File.SetUnixFileMode(_client.KeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        Assert.Equal(
            [$"cluster.tls.key: {_client.KeyPath}: private key must not be readable by group or others (chmod 600)"],
            Errors(Https + "  tls:\n    ca: pki/ca.crt\n    certificate: pki/cluster-node-1.crt\n    key: pki/cluster-node-1.key\n"));
    }

    [Fact]
    public void An_etcd_login_is_read_with_its_password_file_resolved_next_to_the_configuration()
    {
        Isotun.Security.SecretFile.WriteAllText(_temp.File("etcd.password"), "secret\n", overwrite: true);
        var result = Parse("cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n  auth:\n    user: isotun\n    password-file: etcd.password\n");
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(new ClusterAuthConfig("isotun", _temp.File("etcd.password")), result.Config!.Cluster!.Auth);
        var credentials = Isotun.State.Cluster.EtcdCredentials.Load("isotun", _temp.File("etcd.password"));
        Assert.Equal("secret", credentials.Password);
        Assert.DoesNotContain("secret", credentials.ToString());
    }

    [Fact]
    public void An_etcd_login_fault_is_listed_with_its_path()
    {
        File.WriteAllText(_temp.File("open.password"), "secret\n");
        File.SetUnixFileMode(_temp.File("open.password"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        const string Head = "cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n  auth:\n";
        Assert.Equal(
            ["cluster.auth.password-file: required: a file (mode 0600) whose first line is the etcd user's password", "cluster.auth.user: required: the etcd user this node logs in as"],
            Errors(Head + "    other: 1\n").Where(e => !e.Contains("other")).Order(StringComparer.Ordinal));
        Assert.Contains($"cluster.auth.password-file: {_temp.File("open.password")} must not be readable by group or others (chmod 600)",
            Errors(Head + "    user: isotun\n    password-file: open.password\n"));
        Assert.Contains($"cluster.auth.password-file: file not found: {_temp.File("missing.password")}",
            Errors(Head + "    user: isotun\n    password-file: missing.password\n"));
        Assert.Contains("cluster.auth.user: must be 1-128 printable characters without spaces", Errors(Head + "    user: \"two words\"\n    password-file: open.password\n"));
    }

    [Fact]
    public void Http_and_https_endpoints_are_not_mixed()
    {
        Assert.Equal(
            ["cluster.etcd: mixes http:// and https:// endpoints: give them all the same scheme"],
            Errors("cluster:\n  etcd: [http://10.0.0.5:2379, https://10.0.0.6:2379]\n  node: node-1\n  tls:\n    ca: pki/ca.crt\n"));
    }

    [Fact]
    public void Tls_with_http_endpoints_only_is_refused()
    {
        Assert.Equal(
            ["cluster.tls: is for https:// endpoints, and cluster.etcd lists http:// ones only: use https:// URLs, or remove cluster.tls"],
            Errors("cluster:\n  etcd: [http://10.0.0.5:2379]\n  node: node-1\n  tls:\n    ca: pki/ca.crt\n"));
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
