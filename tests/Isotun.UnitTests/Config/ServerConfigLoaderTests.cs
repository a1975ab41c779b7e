using System.Net;
using Isotun.Config;
using Isotun.Security;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Config;

public class ServerConfigLoaderTests
{
    private const string MinimalTenant = """
        tenants:
          - name: acme
            pool: 10.10.0.0/24
        """;

    /// <summary>The files the README's steps make before `config example`: CA, server certificate, acme.passwd.</summary>
    private static void ReadmeFiles(TempDirectory temp)
    {
        var pki = new Isotun.Pki.PkiDirectory(temp.File("pki"));
        pki.InitCa();
        pki.IssueServer("vpn.example", [IPAddress.Parse("198.18.0.1")], []);
        PasswordFile.SetUser(temp.File("acme.passwd"), "alice", PasswordHasher.Hash("secret", iterations: 1000));
    }

    [Fact]
    public void ExampleParsesWithoutErrors()
    {
        using var temp = new TempDirectory();
        ReadmeFiles(temp);
        var result = ServerConfigLoader.Parse(ServerConfigLoader.Example(), temp.File("isotun.yaml"));

        Assert.Empty(result.Errors);
        Assert.True(result.Ok);
        var config = result.Config!;
        Assert.Equal(2, config.Tenants.Count);
        Assert.Equal(temp.File("pki/vpn.example.crt"), config.Tls.Certificate);
        Assert.Equal(temp.File("pki/ca.crt"), config.Tls.ClientCa);
        Assert.Equal(temp.File("acme.passwd"), config.Tenants[0].PasswordFile);
        Assert.Equal(config.Tenants[0].Pool, config.Tenants[1].Pool); // overlapping pools, separate namespaces
        Assert.NotEqual(config.Tenants[0].Namespace, config.Tenants[1].Namespace);
        Assert.Equal("vpn.example", config.Tls.ServerName);
    }

    [Fact]
    public void ExampleInAnEmptyDirectoryNamesTheFilesTheReadmeStepsMake()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse(ServerConfigLoader.Example(), temp.File("isotun.yaml"));
        Assert.Equal(["tenants[0].password-file", "tls.client-ca"], result.Errors.Select(e => e.Path).Order());
    }

    [Fact]
    public void ExampleLoadsFromFile()
    {
        using var temp = new TempDirectory();
        ReadmeFiles(temp);
        var path = temp.File("isotun.yaml");
        File.WriteAllText(path, ServerConfigLoader.Example());
        var result = ServerConfigLoader.Load(path);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(path, result.Config!.SourcePath);
    }

    [Fact]
    public void TheConfigurationReferenceShowsTheCurrentExample()
    {
        var doc = File.ReadAllText(RepositoryRoot.File("docs", "configuration.md"));
        Assert.Contains("```yaml\n" + ServerConfigLoader.Example() + "```", doc);
    }

    [Fact]
    public void DefaultsAreApplied()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse(MinimalTenant, temp.File("isotun.yaml"));

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        var config = result.Config!;
        Assert.Equal(new IPEndPoint(IPAddress.Any, 443), config.Listen);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9410), config.Admin.Listen);
        Assert.Equal(temp.File("isotun.db"), config.StatePath);
        Assert.Equal(temp.File("cookie.key"), config.Cookie.KeyFile);
        Assert.Equal(TimeSpan.FromSeconds(3600), config.Cookie.Lifetime);
        Assert.Equal(TimeSpan.FromSeconds(10), config.Limits.HandshakeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), config.Limits.AuthTimeout);
        Assert.Equal(1024, config.Limits.MaxSessions);
        Assert.Equal(Path.Combine(temp.Path, "pki", "server.crt"), config.Tls.Certificate);
        Assert.Equal(Path.Combine(temp.Path, "pki", "server.key"), config.Tls.Key);
        Assert.Null(config.Tls.ClientCa);
        Assert.Equal("server", config.Tls.ServerName);
        Assert.Empty(config.Tls.GenerateIps);
        Assert.Equal(temp.File("isotun.yaml"), config.SourcePath);

        var tenant = Assert.Single(config.Tenants);
        Assert.Equal("acme", tenant.Name);
        Assert.Equal("10.10.0.0/24", tenant.Pool.ToString());
        Assert.Equal((1400, 30, 20), (tenant.Mtu, tenant.Dpd, tenant.Keepalive));
        Assert.Null(tenant.PasswordFile);
        Assert.Equal("isotun-acme", tenant.Device);
        Assert.Empty(tenant.Routes);
        Assert.Empty(tenant.Dns);
    }

    [Fact]
    public void EmptyNullValuesMeanDefaults()
    {
        using var temp = new TempDirectory();
        var yaml = """
            listen:
            tls:
            admin:
              listen: ~
            limits: null
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                routes:
                mtu:
            """;
        var result = ServerConfigLoader.Parse(yaml, temp.File("c.yaml"));
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(1400, result.Config!.Tenants[0].Mtu);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9410), result.Config.Admin.Listen);
    }

    [Theory]
    [InlineData(null, 4L * 1024 * 1024)]
    [InlineData("128", 128L * 1024)]
    [InlineData("65536", 64L * 1024 * 1024)]
    public void The_session_memory_budget_defaults_to_4_MiB_and_is_given_in_KiB(string? kib, long bytes)
    {
        using var temp = new TempDirectory();
        var yaml = $"""
            limits:{(kib is null ? " {}" : $"\n  session-memory-kib: {kib}")}
            tenants:
              - name: acme
                pool: 10.10.0.0/24
            """;
        var result = ServerConfigLoader.Parse(yaml, temp.File("c.yaml"));
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(bytes, result.Config!.Limits.SessionMemory);
    }

    [Theory]
    [InlineData("127")]
    [InlineData("2000000")]
    [InlineData("4MiB")]
    public void A_session_memory_budget_too_small_too_large_or_not_a_number_is_refused(string kib)
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse($"limits:\n  session-memory-kib: {kib}\ntenants:\n  - name: acme\n    pool: 10.10.0.0/24\n", temp.File("c.yaml"));
        Assert.False(result.Ok);
        Assert.Contains(result.Errors, e => e.Path == "limits.session-memory-kib");
    }

    [Fact]
    public void ExplicitValuesAndRelativePathsAreResolved()
    {
        using var temp = new TempDirectory();
        Directory.CreateDirectory(temp.File("etc"));
        Directory.CreateDirectory(temp.File("certs"));
        var pki = new Isotun.Pki.PkiDirectory(temp.File("certs"));
        pki.InitCa();
        PasswordFile.SetUser(temp.File("etc/acme.passwd"), "alice", PasswordHasher.Hash("pw", 1000));
        var yaml = """
            listen: "[::]:8443"
            state: data/state.db
            tls:
              certificate: ../certs/server.crt
              key: ../certs/server.key
              client-ca: ../certs/ca.crt
              server-name: 192.0.2.1
              generate-ips: [192.0.2.1, "2001:db8::1"]
            admin:
              listen: off
            cookie:
              key-file: /var/lib/isotun/cookie.key
              lifetime: 600
            limits:
              handshake-timeout: 5
              auth-timeout: 30
              max-sessions: 10
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                routes: [10.20.0.0/16, "2001:db8:1::/48"]
                dns: [10.20.0.53, "2001:db8::53"]
                mtu: 1300
                dpd: 60
                keepalive: 25
                password-file: acme.passwd
                device: tun-acme
            """;
        var result = ServerConfigLoader.Parse(yaml, temp.File("etc/isotun.yaml"));

        Assert.True(result.Ok, string.Join("\n", result.Errors));
        var config = result.Config!;
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Any, 8443), config.Listen);
        Assert.Equal(temp.File("etc/data/state.db"), config.StatePath);
        Assert.Equal(temp.File("certs/server.crt"), config.Tls.Certificate);
        Assert.Equal(temp.File("certs/server.key"), config.Tls.Key);
        Assert.Equal(temp.File("certs/ca.crt"), config.Tls.ClientCa);
        Assert.Equal("192.0.2.1", config.Tls.ServerName);
        Assert.Equal([IPAddress.Parse("192.0.2.1"), IPAddress.Parse("2001:db8::1")], config.Tls.GenerateIps);
        Assert.Null(config.Admin.Listen);
        Assert.Equal("/var/lib/isotun/cookie.key", config.Cookie.KeyFile);
        Assert.Equal(TimeSpan.FromSeconds(600), config.Cookie.Lifetime);
        Assert.Equal(new LimitsConfig(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), 10), config.Limits);
        var tenant = config.Tenants[0];
        Assert.Equal(["10.20.0.0/16", "2001:db8:1::/48"], tenant.Routes.Select(r => r.ToString()));
        Assert.Equal([IPAddress.Parse("10.20.0.53"), IPAddress.Parse("2001:db8::53")], tenant.Dns);
        Assert.Equal((1300, 60, 25), (tenant.Mtu, tenant.Dpd, tenant.Keepalive));
        Assert.Equal(temp.File("etc/acme.passwd"), tenant.PasswordFile);
        Assert.Equal("tun-acme", tenant.Device);
    }

    [Fact]
    public void ManyFaultsAreAllReportedWithPaths()
    {
        using var temp = new TempDirectory();
        var yaml = """
            listen: 0.0.0.0:99999
            tls:
              clientca: ca.pem
              certificate: server.crt
            admin:
              listen: [1, 2]
            cookie:
              lifetime: 10
            limits:
              max-sessions: abc
            tenants:
              - name: Acme
                namespace: host
                pool: 10.10.0.0/24
                mtu: 100
              - name: beta
                namespace: host
                pool: 10.10.0.0/16
                routes: [10.20.0.1/16, nonsense]
                dns: [1.2.3]
              - name: beta
                namespace: host
                pool: fd00::/64
                dpd: 1
                bogus: 1
            """;

        var result = ServerConfigLoader.Parse(yaml, temp.File("isotun.yaml"));

        Assert.False(result.Ok);
        Assert.Null(result.Config);
        var expected = new[]
        {
            "listen: must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535",
            "tls.clientca: unknown key; did you mean 'client-ca'?",
            "tls.key: required when tls.certificate is set",
            "admin.listen: expected a single value, found a sequence",
            "cookie.lifetime: must be between 60 and 604800",
            "limits.max-sessions: must be an integer",
            "tenants[0].name: must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit",
            "tenants[0].mtu: must be between 576 and 9000",
            "tenants[1].pool: overlaps tenants[0].pool (10.10.0.0/24) in the same namespace",
            "tenants[1].routes[0]: host bits are set; did you mean 10.20.0.0/16?",
            "tenants[1].routes[1]: must be a CIDR such as 10.20.0.0/16 or fd00::/64",
            "tenants[1].dns[0]: not an IP address",
            "tenants[1].namespace: 'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace",
            "tenants[2].bogus: unknown key",
            "tenants[2].name: duplicate tenant name 'beta' (also tenants[1])",
            "tenants[2].namespace: 'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace",
            "tenants[2].pool: must be an IPv4 CIDR (IPv6 goes in pool6)",
            "tenants[2].dpd: must be between 5 and 3600",
            "tenants[2].device: device 'isotun-beta' is also used by tenants[1] in the same namespace; set device explicitly",
        };
        Assert.Equal(expected.Order(StringComparer.Ordinal), result.Errors.Select(e => e.ToString()).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("lisen: 0.0.0.0:443", "lisen", "unknown key; did you mean 'listen'?")]
    [InlineData("Listen: 0.0.0.0:443", "Listen", "unknown key; did you mean 'listen'?")]
    [InlineData("frobnicate: 1", "frobnicate", "unknown key")]
    [InlineData("limits:\n  handshake_timeout: 5", "limits.handshake_timeout", "unknown key; did you mean 'handshake-timeout'?")]
    public void UnknownKeysSuggestTheClosest(string extra, string path, string message)
    {
        var errors = ParseErrors(extra + "\n" + MinimalTenant);
        Assert.Equal([new ConfigError(path, message)], errors);
    }

    [Fact]
    public void DuplicateKeysAreErrorsNextToOthers()
    {
        var errors = ParseErrors("""
            listen: 0.0.0.0:443
            listen: 0.0.0.0:444
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                mtu: 1
                pool: 10.11.0.0/24
            """);
        Assert.Equal(
            [
                new ConfigError("listen", "duplicate key (first on line 1)"),
                new ConfigError("tenants[0].pool", "duplicate key (first on line 5)"),
                new ConfigError("tenants[0].mtu", "must be between 576 and 9000"),
            ],
            errors);
    }

    [Fact]
    public void OverlappingPoolsAreReportedOnlyWithinOneNamespace()
    {
        // a/c and b/d overlap in the host namespace; e overlaps a but lives in its own namespace.
        var errors = ParseErrors("""
            tenants:
              - name: a
                namespace: host
                pool: 10.0.0.0/8
              - name: b
                namespace: host
                pool: 192.168.0.0/24
              - name: c
                namespace: host
                pool: 10.1.2.0/24
              - name: d
                namespace: host
                pool: 192.168.0.128/25
              - name: e
                pool: 10.1.2.0/24
            """);
        Assert.Equal(
            [
                new ConfigError("tenants[1].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace"),
                new ConfigError("tenants[2].pool", "overlaps tenants[0].pool (10.0.0.0/8) in the same namespace"),
                new ConfigError("tenants[2].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace"),
                new ConfigError("tenants[3].pool", "overlaps tenants[1].pool (192.168.0.0/24) in the same namespace"),
                new ConfigError("tenants[3].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace"),
            ],
            errors);
    }

    [Theory]
    [InlineData("10.10.0.1/24", "host bits are set; did you mean 10.10.0.0/24?")]
    [InlineData("10.10.0.0", "must be an IPv4 CIDR such as 10.10.0.0/24")]
    [InlineData("10.10.0/24", "must be an IPv4 CIDR such as 10.10.0.0/24")]
    [InlineData("10.10.0.0/33", "prefix length must be between /8 and /30")]
    [InlineData("10.10.0.0/31", "prefix length must be between /8 and /30")]
    [InlineData("10.0.0.0/7", "prefix length must be between /8 and /30")]
    [InlineData("10.10.0.0/x", "prefix length must be between /8 and /30")]
    [InlineData("300.10.0.0/24", "must be an IPv4 CIDR such as 10.10.0.0/24")]
    [InlineData("fd00::/64", "must be an IPv4 CIDR (IPv6 goes in pool6)")]
    public void BadPools(string pool, string message)
    {
        var errors = ParseErrors($"tenants:\n  - name: acme\n    pool: \"{pool}\"\n");
        Assert.Equal([new ConfigError("tenants[0].pool", message)], errors);
    }

    [Theory]
    [InlineData("fd00::1/64", "host bits are set; did you mean fd00::/64?")]
    [InlineData("10.0.0.0/40", "prefix length out of range for the address family")]
    [InlineData("10.0.0.0/8/8", "must be a CIDR such as 10.20.0.0/16 or fd00::/64")]
    [InlineData("fe80::/64%eth0", "prefix length out of range for the address family")]
    public void BadRoutes(string route, string message)
    {
        var errors = ParseErrors($"tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n    routes: [\"{route}\"]\n");
        Assert.Equal([new ConfigError("tenants[0].routes[0]", message)], errors);
    }

    [Fact]
    public void YamlSyntaxErrorIsOneErrorWithPosition()
    {
        var errors = ParseErrors("tenants:\n  - name: acme\n    pool: [10.10.0.0/24\n  bad: : :\n");
        var error = Assert.Single(errors);
        Assert.Equal("(yaml)", error.Path);
        Assert.Matches(@"^line \d+, column \d+: ", error.Message);
        Assert.DoesNotContain("Idx:", error.Message);
    }

    [Fact]
    public void TabIndentationIsASyntaxError()
    {
        var error = Assert.Single(ParseErrors("tenants:\n\t- name: acme\n"));
        Assert.Equal("(yaml)", error.Path);
        Assert.Contains("tab", error.Message);
    }

    [Theory]
    [InlineData("a: [1, 2\nb: 3\n")]
    [InlineData("a: 'x\n")]
    [InlineData("a:\n  - b\n c: d\n")]
    [InlineData("{{{{")]
    [InlineData("]")]
    [InlineData("key: \"\\q\"")]
    public void MalformedYamlNeverThrows(string yaml)
    {
        var error = Assert.Single(ParseErrors(yaml));
        Assert.Equal("(yaml)", error.Path);
        Assert.Matches(@"^line \d+, column \d+: ", error.Message);
    }

    [Fact]
    public void WrongNodeKindsAreErrorsNotExceptions()
    {
        var errors = ParseErrors("""
            listen: [0.0.0.0, 443]
            tls: yes
            limits:
              - 1
            tenants:
              name: acme
            """);
        Assert.Equal(
            [
                new ConfigError("listen", "expected a single value, found a sequence"),
                new ConfigError("tls", "expected a mapping, found a scalar"),
                new ConfigError("limits", "expected a mapping, found a sequence"),
                new ConfigError("tenants", "expected a sequence (a list), found a mapping"),
            ],
            errors);
    }

    [Fact]
    public void WrongNodeKindsInsideTenants()
    {
        var errors = ParseErrors("""
            tenants:
              - just-a-string
              - name: [a]
                pool: {x: 1}
                routes: 10.0.0.0/8
                dns: [[1.1.1.1]]
              -
            """);
        Assert.Equal(
            [
                new ConfigError("tenants[0]", "expected a mapping, found a scalar"),
                new ConfigError("tenants[1].name", "expected a single value, found a sequence"),
                new ConfigError("tenants[1].pool", "expected a single value, found a mapping"),
                new ConfigError("tenants[1].routes", "expected a sequence (a list), found a scalar"),
                new ConfigError("tenants[1].dns[0]", "expected a single value, found a sequence"),
                new ConfigError("tenants[2]", "expected a mapping, found an empty item"),
            ],
            errors);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    [InlineData("---\n")]
    [InlineData("tenants: []\n")]
    [InlineData("tenants:\n")]
    public void AtLeastOneTenantIsRequired(string yaml)
    {
        Assert.Equal([new ConfigError("tenants", "at least one tenant is required")], ParseErrors(yaml));
    }

    [Fact]
    public void RootMustBeAMapping()
    {
        Assert.Equal([new ConfigError("(root)", "expected a mapping of settings, found a sequence")], ParseErrors("- a\n- b\n"));
    }

    [Fact]
    public void TenantRequiresNameAndPool()
    {
        Assert.Equal(
            [new ConfigError("tenants[0].name", "required"), new ConfigError("tenants[0].pool", "required")],
            ParseErrors("tenants:\n  - mtu: 1400\n"));
    }

    [Fact]
    public void AliasesAndMultipleDocumentsAreRejected()
    {
        var alias = Assert.Single(ParseErrors("base: &b 1\n" + MinimalTenant + "\n    mtu: *b\n"));
        Assert.Equal("(yaml)", alias.Path);
        Assert.Contains("aliases", alias.Message);

        var documents = Assert.Single(ParseErrors(MinimalTenant + "\n---\n" + MinimalTenant));
        Assert.Equal("(yaml)", documents.Path);
        Assert.Contains("only one YAML document", documents.Message);
    }

    [Fact]
    public void DeeplyNestedInputIsAnErrorNotACrash()
    {
        var yaml = "tenants: " + new string('[', 5000) + new string(']', 5000);
        var error = Assert.Single(ParseErrors(yaml));
        Assert.Equal("(yaml)", error.Path);
    }

    [Theory]
    [InlineData("listen: 0.0.0.0", "listen")]
    [InlineData("listen: 0.0.0.0:0", "listen")]
    [InlineData("listen: 10.1:443", "listen")]
    [InlineData("listen: vpn.example.com:443", "listen")]
    [InlineData("listen: \"::1:443\"", "listen")]
    [InlineData("admin:\n  listen: 127.0.0.1", "admin.listen")]
    public void BadEndpoints(string line, string path)
    {
        var error = Assert.Single(ParseErrors(line + "\n" + MinimalTenant));
        Assert.Equal(path, error.Path);
    }

    [Fact]
    public void AdminMayListenOnANonLoopbackAddressWhenExplicit()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse("admin:\n  listen: 0.0.0.0:9410\n" + MinimalTenant, temp.File("c.yaml"));
        Assert.True(result.Ok);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 9410), result.Config!.Admin.Listen);
    }

    /// <summary>A client CRL cut short is one more listed error at its key, with the others, not an exception.</summary>
    [Fact]
    public void A_truncated_client_crl_is_listed_with_the_other_errors()
    {
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("cut.crl"), "-----BEGIN X509 CRL-----\nMIIB\n");
        var result = ServerConfigLoader.Parse("""
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                client-crl: cut.crl
                mtu: 10
            """, temp.File("c.yaml"));
        Assert.False(result.Ok);
        Assert.Contains(result.Errors, e => e.Path == "tenants[0].client-crl" && e.Message.Contains("not an X.509 CRL"));
        Assert.Contains(result.Errors, e => e.Path == "tenants[0].mtu");
    }

    [Theory]
    [InlineData("")]
    [InlineData("  \n")]
    [InlineData("short-token\n")]
    public void AnAdminTokenFileWithAnEmptyOrShortTokenIsRefused(string content)
    {
        using var temp = new TempDirectory();
        Isotun.Security.SecretFile.WriteAllText(temp.File("admin.token"), content, overwrite: true);
        var result = ServerConfigLoader.Parse("admin:\n  token-file: admin.token\n" + MinimalTenant, temp.File("c.yaml"));
        var error = Assert.Single(result.Errors);
        Assert.Equal("admin.token-file", error.Path);
        Assert.Contains($"at least {Isotun.Server.Configuration.AdminConfig.MinTokenLength}", error.Message);
    }

    /// <summary>
    /// A token file that cannot be read (a user other than the server's checking the file, say) is an error in the
    /// list, not an exception that ends the command. /proc/self/mem is a 0600 file whose read at its start fails.
    /// </summary>
    [Fact]
    public void AnAdminTokenFileThatCannotBeReadIsAnErrorInTheList()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse("admin:\n  token-file: /proc/self/mem\n  socket: [not, a, path]\n" + MinimalTenant, temp.File("c.yaml"));
        Assert.Contains(result.Errors, e => e.Path == "admin.token-file" && e.Message.StartsWith("cannot read /proc/self/mem", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.Path == "admin.socket");
    }

    [Fact]
    public void AnAdminTokenFileWithALongEnoughTokenIsTaken()
    {
        using var temp = new TempDirectory();
        Isotun.Security.SecretFile.WriteAllText(temp.File("admin.token"), new string('a', 64) + "\n", overwrite: true);
        var result = ServerConfigLoader.Parse("admin:\n  token-file: admin.token\n" + MinimalTenant, temp.File("c.yaml"));
        Assert.True(result.Ok, string.Join("; ", result.Errors));
        Assert.Equal(temp.File("admin.token"), result.Config!.Admin.TokenFile);
    }

    [Fact]
    public void AdminHostsAreHostNamesAndEveryWrongOneIsListed()
    {
        using var temp = new TempDirectory();
        var ok = ServerConfigLoader.Parse("admin:\n  hosts: [VPN-1.Example.net, \"*.fleet.example.net\", vpn-1.example.net.]\n" + MinimalTenant, temp.File("c.yaml"));
        Assert.True(ok.Ok, string.Join("; ", ok.Errors));
        Assert.Equal(["vpn-1.example.net", "*.fleet.example.net"], ok.Config!.Admin.Hosts);

        var bad = ServerConfigLoader.Parse("admin:\n  hosts: [198.18.0.10, \"a b\", ok.example.net, \"*.net\"]\n" + MinimalTenant, temp.File("c.yaml"));
        Assert.Equal(["admin.hosts[0]", "admin.hosts[1]", "admin.hosts[3]"], bad.Errors.Select(e => e.Path));
        Assert.Contains("is an IP address", bad.Errors[0].Message);
        Assert.Contains("is not a host name", bad.Errors[1].Message);
    }

    [Fact]
    public void AnAdminTokenOnAListenerOffLoopbackIsRefused()
    {
        using var temp = new TempDirectory();
        Isotun.Security.SecretFile.WriteAllText(temp.File("admin.token"), new string('a', 64) + "\n", overwrite: true);
        var result = ServerConfigLoader.Parse("admin:\n  listen: 198.18.0.10:9410\n  token-file: admin.token\n" + MinimalTenant, temp.File("c.yaml"));
        var error = Assert.Single(result.Errors);
        Assert.Equal("admin.token-file", error.Path);
        Assert.Contains("in clear", error.Message);
        // Without the token, metrics and health may be served there.
        Assert.True(ServerConfigLoader.Parse("admin:\n  listen: 198.18.0.10:9410\n" + MinimalTenant, temp.File("c.yaml")).Ok);
        Assert.True(ServerConfigLoader.Parse("admin:\n  listen: \"[::1]:9410\"\n  token-file: admin.token\n" + MinimalTenant, temp.File("c.yaml")).Ok);
    }

    [Fact]
    public void TlsFilesBothMissingIsFineButOneMissingIsAnError()
    {
        using var temp = new TempDirectory();
        var source = temp.File("isotun.yaml");
        Assert.True(ServerConfigLoader.Parse(MinimalTenant, source).Ok);

        Directory.CreateDirectory(temp.File("pki"));
        File.WriteAllText(temp.File("pki/server.crt"), "x");
        var errors = ServerConfigLoader.Parse(MinimalTenant, source).Errors;
        var error = Assert.Single(errors);
        Assert.Equal("tls.key", error.Path);
        Assert.StartsWith($"file not found: {temp.File("pki/server.key")}", error.Message);

        File.WriteAllText(temp.File("pki/server.key"), "x");
        File.SetUnixFileMode(temp.File("pki/server.key"), (UnixFileMode)0b110_100_100);
        Assert.Contains(ServerConfigLoader.Parse(MinimalTenant, source).Errors, e => e.Path == "tls.key" && e.Message.Contains("chmod 600"));

        // A real pair is taken; a key that is not the certificate's is refused.
        File.Delete(temp.File("pki/server.crt"));
        File.Delete(temp.File("pki/server.key"));
        new Isotun.Pki.PkiDirectory(temp.File("pki")).EnsureServer("server", []);
        Assert.True(ServerConfigLoader.Parse(MinimalTenant, source).Ok);
        var other = new Isotun.Pki.PkiDirectory(temp.File("other")).EnsureServer("server", []);
        File.Copy(other.KeyPath, temp.File("pki/server.key"), overwrite: true);
        Assert.Contains(ServerConfigLoader.Parse(MinimalTenant, source).Errors, e => e.Path == "tls.certificate");

        Assert.Equal(
            [new ConfigError("tls.certificate", "required when tls.key is set")],
            ServerConfigLoader.Parse("tls:\n  key: k.pem\n" + MinimalTenant, source).Errors);
    }

    [Fact]
    public void ClientCaAndPasswordFileMustExistAndBeValid()
    {
        using var temp = new TempDirectory();
        var source = temp.File("isotun.yaml");
        var yaml = """
            tls:
              client-ca: ca.crt
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                password-file: acme.passwd
            """;
        Assert.Equal(
            [
                new ConfigError("tls.client-ca", $"file not found: {temp.File("ca.crt")}"),
                new ConfigError("tenants[0].password-file", $"file not found: {temp.File("acme.passwd")}"),
            ],
            ServerConfigLoader.Parse(yaml, source).Errors);

        File.WriteAllText(temp.File("ca.crt"), "not pem");
        File.WriteAllText(temp.File("acme.passwd"), "alice\n");
        var errors = ServerConfigLoader.Parse(yaml, source).Errors;
        Assert.Equal(["tls.client-ca", "tenants[0].password-file"], errors.Select(e => e.Path));
        Assert.Contains("line 1", errors[1].Message);
    }

    [Fact]
    public void DeviceNamesAreDefaultedAndChecked()
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse("""
            tenants:
              - name: verylongtenantname
                pool: 10.10.0.0/24
            """, temp.File("c.yaml"));
        Assert.Equal("isotun-verylong", result.Config!.Tenants[0].Device);

        Assert.Equal(
            [new ConfigError("tenants[0].device", "must be 1-15 characters of A-Z a-z 0-9 _ . -")],
            ParseErrors("tenants:\n  - name: a\n    pool: 10.10.0.0/24\n    device: this-is-too-long-x\n"));
        Assert.Equal(
            [new ConfigError("tenants[0].device", "must be 1-15 characters of A-Z a-z 0-9 _ . -")],
            ParseErrors("tenants:\n  - name: a\n    pool: 10.10.0.0/24\n    device: \"tun/0\"\n"));
    }

    [Theory]
    [InlineData("mtu: 575", "tenants[0].mtu", "must be between 576 and 9000")]
    [InlineData("mtu: 9001", "tenants[0].mtu", "must be between 576 and 9000")]
    [InlineData("keepalive: 4", "tenants[0].keepalive", "must be between 5 and 3600")]
    [InlineData("dpd: 3601", "tenants[0].dpd", "must be between 5 and 3600")]
    [InlineData("mtu: 1400.5", "tenants[0].mtu", "must be an integer")]
    [InlineData("mtu: 99999999999", "tenants[0].mtu", "must be an integer")]
    public void TenantRanges(string line, string path, string message)
    {
        Assert.Equal([new ConfigError(path, message)], ParseErrors(MinimalTenant + "\n    " + line + "\n"));
    }

    [Theory]
    [InlineData("cookie:\n  lifetime: 604801", "cookie.lifetime", "must be between 60 and 604800")]
    [InlineData("limits:\n  handshake-timeout: 0", "limits.handshake-timeout", "must be between 1 and 120")]
    [InlineData("limits:\n  auth-timeout: 601", "limits.auth-timeout", "must be between 5 and 600")]
    [InlineData("limits:\n  max-sessions: 100001", "limits.max-sessions", "must be between 1 and 100000")]
    [InlineData("tls:\n  server-name: \"bad name\"", "tls.server-name", "must be a DNS name or an IP address")]
    [InlineData("tls:\n  generate-ips: [10.0.0.256]", "tls.generate-ips[0]", "not an IP address")]
    public void GlobalRanges(string block, string path, string message)
    {
        Assert.Equal([new ConfigError(path, message)], ParseErrors(block + "\n" + MinimalTenant));
    }

    [Fact]
    public void LoadReportsMissingAndOversizedFiles()
    {
        using var temp = new TempDirectory();
        var missing = ServerConfigLoader.Load(temp.File("none.yaml"));
        var error = Assert.Single(missing.Errors);
        Assert.Equal("(file)", error.Path);
        Assert.Null(missing.Config);

        var big = temp.File("big.yaml");
        File.WriteAllText(big, "# " + new string('x', ServerConfigLoader.MaxFileBytes));
        Assert.Equal("(file)", Assert.Single(ServerConfigLoader.Load(big).Errors).Path);
    }

    [Fact]
    public void A_ticket_key_file_that_is_not_one_key_or_is_open_to_others_is_an_error_and_a_missing_one_is_made_at_start()
    {
        using var temp = new TempDirectory();
        string yaml = "tls:\n  ticket-key-file: ticket.key\n" + MinimalTenant;
        ConfigLoadResult Parse() => ServerConfigLoader.Parse(yaml, temp.File("isotun.yaml"));

        var missing = Parse();
        Assert.True(missing.Ok, string.Join("\n", missing.Errors));
        Assert.Equal(temp.File("ticket.key"), missing.Config!.Tls.TicketKeyFile);

        Isotun.Security.SecretFile.WriteAllBytes(temp.File("ticket.key"), new byte[48], overwrite: true);
        var error = Assert.Single(Parse().Errors);
        Assert.Equal("tls.ticket-key-file", error.Path);
        Assert.Contains("must hold exactly 80 bytes", error.Message);

        Isotun.Security.SecretFile.WriteAllBytes(temp.File("ticket.key"), new byte[80], overwrite: true);
        Assert.True(Parse().Ok);
        File.SetUnixFileMode(temp.File("ticket.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        error = Assert.Single(Parse().Errors);
        Assert.Equal("tls.ticket-key-file", error.Path);
        Assert.Contains("must not be readable by group or others", error.Message);
    }

    /// <summary>A cookie key file the server would refuse at start (open to others, or not a ring of keys) fails the
    /// validation; a missing one is made at start, and a cluster node never reads it.</summary>
    [Fact]
    public void A_cookie_key_file_the_server_would_refuse_is_an_error_and_a_missing_one_is_not()
    {
        using var temp = new TempDirectory();
        string yaml = "cookie:\n  key-file: cookie.key\n" + MinimalTenant;
        ConfigLoadResult Parse() => ServerConfigLoader.Parse(yaml, temp.File("isotun.yaml"));
        var key = temp.File("cookie.key");

        Assert.True(Parse().Ok, string.Join("\n", Parse().Errors));
        Isotun.Server.CookieKeyFile.LoadOrCreate(key, DateTimeOffset.UtcNow);
        Assert.True(Parse().Ok, string.Join("\n", Parse().Errors));

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead); // a plain cp under umask 022
        var error = Assert.Single(Parse().Errors);
        Assert.Equal("cookie.key-file", error.Path);
        Assert.Contains("must not be readable by group or others", error.Message);

        Isotun.Security.SecretFile.WriteAllBytes(key, new byte[7], overwrite: true); // cut short
        error = Assert.Single(Parse().Errors);
        Assert.Equal("cookie.key-file", error.Path);
        Assert.StartsWith(key + ": ", error.Message);
    }

    [Fact]
    public void ErrorToStringIsPathColonMessage()
    {
        Assert.Equal("tenants[0].mtu: must be between 576 and 9000", new ConfigError("tenants[0].mtu", "must be between 576 and 9000").ToString());
    }

    private static IReadOnlyList<ConfigError> ParseErrors(string yaml)
    {
        using var temp = new TempDirectory();
        var result = ServerConfigLoader.Parse(yaml, temp.File("isotun.yaml"));
        Assert.Equal(result.Errors.Count == 0, result.Ok);
        return result.Errors;
    }
}
