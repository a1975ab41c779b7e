using System.Net;
using Isotun.Config;
using Isotun.Pki;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Config;

/// <summary>
/// The tenant keys added for isolation (namespace, pool6, client-ca, allowed-ous, server-names, max-sessions,
/// rate-limit, client-to-client, lease-lifetime, uplink): defaults, values, and every error with its path.
/// </summary>
public class TenantIsolationConfigTests
{
    private const string Acme = "tenants:\n  - name: acme\n    pool: 10.10.0.0/24\n";

    [Fact]
    public void Defaults_give_each_tenant_its_own_namespace_and_no_extras()
    {
        var t = Single(Acme);
        Assert.Equal("isotun-acme", t.Namespace);
        Assert.False(t.InHostNamespace);
        Assert.Null(t.Pool6);
        Assert.Null(t.ClientCa);
        Assert.Empty(t.AllowedOus);
        Assert.Equal(["acme"], t.EffectiveOus);
        Assert.Empty(t.ServerNames);
        Assert.Equal(512, t.MaxSessions); // below the server-wide 1024
        Assert.Equal(16, t.MaxSessionsPerUser);
        Assert.Equal(UserLimitAction.ReplaceOldestIdle, t.OverUserLimit);
        Assert.Equal(0, t.RateLimit);
        Assert.False(t.ClientToClient);
        Assert.Null(t.LeaseLifetime);
        Assert.Same(UplinkConfig.None, t.Uplink);
    }

    [Fact]
    public void Every_isolation_key_is_read()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.File("pki"));
        pki.InitCa();
        var t = Single(Acme + """
                namespace: tenant_acme.1
                pool6: fd00:10::/64
                client-ca: pki/ca.crt
                allowed-ous: [acme, acme-partners]
                server-names: [VPN.Acme.Example, vpn2.acme.example]
                max-sessions: 100000
                rate-limit: 8192
                client-to-client: yes
                lease-lifetime: 31536000
                uplink:
                  veth:
                    peer-namespace: acme-net
                    name: up0
                    peer-name: u-acme0
                    address: 198.18.3.1/24
                    peer-address: 198.18.3.2/24
            """, temp);
        Assert.Equal("tenant_acme.1", t.Namespace);
        Assert.Equal("fd00:10::/64", t.Pool6?.ToString());
        Assert.Equal(pki.CaCertificatePath, t.ClientCa);
        Assert.Equal(["acme", "acme-partners"], t.AllowedOus);
        Assert.Equal(["acme", "acme-partners"], t.EffectiveOus);
        Assert.Equal(["vpn.acme.example", "vpn2.acme.example"], t.ServerNames);
        Assert.Equal(100_000, t.MaxSessions);
        Assert.Equal(8192, t.RateLimit);
        Assert.True(t.ClientToClient);
        Assert.Equal(TimeSpan.FromDays(365), t.LeaseLifetime);
        Assert.Equal(new UplinkConfig("veth", "acme-net", "up0", "u-acme0", "198.18.3.1/24", "198.18.3.2/24", IPAddress.Parse("198.18.3.2")), t.Uplink);
    }

    [Theory]
    [InlineData("client-to-client: true", true)]
    [InlineData("client-to-client: on", true)]
    [InlineData("client-to-client: YES", true)]
    [InlineData("client-to-client: false", false)]
    [InlineData("client-to-client: off", false)]
    [InlineData("client-to-client: no", false)]
    [InlineData("client-to-client:", false)]
    public void Client_to_client_takes_the_usual_booleans(string line, bool expected)
    {
        Assert.Equal(expected, Single(Acme + "    " + line + "\n").ClientToClient);
    }

    [Fact]
    public void Lease_lifetime_zero_keeps_leases_forever()
    {
        Assert.Null(Single(Acme + "    lease-lifetime: 0\n").LeaseLifetime);
        Assert.Equal(TimeSpan.FromSeconds(1), Single(Acme + "    lease-lifetime: 1\n").LeaseLifetime);
    }

    [Theory]
    [InlineData("namespace: \"bad/ns\"", "tenants[0].namespace", "must be 1-64 characters of A-Z a-z 0-9 _ . - (or 'host' for the server's own namespace)")]
    [InlineData("namespace: \"..\"", "tenants[0].namespace", "must be 1-64 characters of A-Z a-z 0-9 _ . - (or 'host' for the server's own namespace)")]
    [InlineData("namespace: \"a b\"", "tenants[0].namespace", "must be 1-64 characters of A-Z a-z 0-9 _ . - (or 'host' for the server's own namespace)")]
    [InlineData("namespace: [a, b]", "tenants[0].namespace", "expected a single value, found a sequence")]
    [InlineData("pool6: 10.20.0.0/24", "tenants[0].pool6", "must be an IPv6 CIDR such as fd00:10::/64")]
    [InlineData("pool6: fd00:10::/47", "tenants[0].pool6", "prefix length must be between /48 and /120")]
    [InlineData("pool6: fd00:10::/121", "tenants[0].pool6", "prefix length must be between /48 and /120")]
    [InlineData("pool6: fd00:10::1/64", "tenants[0].pool6", "host bits are set; did you mean fd00:10::/64?")]
    [InlineData("pool6: \"fd00:10::\"", "tenants[0].pool6", "must be an IPv6 CIDR such as fd00:10::/64")]
    [InlineData("pool6: nonsense", "tenants[0].pool6", "must be an IPv6 CIDR such as fd00:10::/64")]
    [InlineData("allowed-ous: [\"\"]", "tenants[0].allowed-ous[0]", "must be 1-64 characters")]
    [InlineData("allowed-ous: [ok, x12345678901234567890123456789012345678901234567890123456789012345]", "tenants[0].allowed-ous[1]", "must be 1-64 characters")]
    [InlineData("allowed-ous: acme", "tenants[0].allowed-ous", "expected a sequence (a list), found a scalar")]
    [InlineData("server-names: [\"bad name\"]", "tenants[0].server-names[0]", "must be a DNS name")]
    [InlineData("server-names: [vpn.example.com, 10.0.0.1]", "tenants[0].server-names[1]", "must be a DNS name")]
    [InlineData("server-names: [\"*.example.com\"]", "tenants[0].server-names[0]", "must be a DNS name")]
    [InlineData("max-sessions: 0", "tenants[0].max-sessions", "must be between 1 and 100000")]
    [InlineData("max-sessions: 100001", "tenants[0].max-sessions", "must be between 1 and 100000")]
    [InlineData("max-sessions: many", "tenants[0].max-sessions", "must be an integer")]
    [InlineData("rate-limit: 8191", "tenants[0].rate-limit", "must be 0 (none) or at least 8192 bytes/s")]
    [InlineData("rate-limit: 1", "tenants[0].rate-limit", "must be 0 (none) or at least 8192 bytes/s")]
    [InlineData("rate-limit: -1", "tenants[0].rate-limit", "must be between 0 and 2000000000")]
    [InlineData("rate-limit: 2000000001", "tenants[0].rate-limit", "must be between 0 and 2000000000")]
    [InlineData("rate-limit: 10MB", "tenants[0].rate-limit", "must be an integer")]
    [InlineData("client-to-client: maybe", "tenants[0].client-to-client", "must be true or false")]
    [InlineData("lease-lifetime: -1", "tenants[0].lease-lifetime", "must be between 0 and 31536000")]
    [InlineData("lease-lifetime: 31536001", "tenants[0].lease-lifetime", "must be between 0 and 31536000")]
    [InlineData("lease-lifetime: 1h", "tenants[0].lease-lifetime", "must be an integer")]
    [InlineData("queues: 0", "tenants[0].queues", "must be between 1 and 16")]
    [InlineData("queues: 17", "tenants[0].queues", "must be between 1 and 16")]
    [InlineData("queues: auto", "tenants[0].queues", "must be an integer")]
    [InlineData("offload: sometimes", "tenants[0].offload", "must be true or false")]
    [InlineData("client-ca: missing.crt", "tenants[0].client-ca", "file not found: {dir}/missing.crt")]
    [InlineData("uplink: bridge", "tenants[0].uplink", "expected a mapping, found a scalar")]
    [InlineData("uplink: {tunnel: {}}", "tenants[0].uplink.tunnel", "unknown key")]
    public void Each_bad_value_is_one_error_at_its_path(string line, string path, string message)
    {
        using var temp = new TempDirectory();
        var errors = Errors(Acme + "    " + line + "\n", temp);
        Assert.Equal([new ConfigError(path, message.Replace("{dir}", temp.Path))], errors);
    }

    [Fact]
    public void Queues_default_to_one_per_core_up_to_8_and_take_1_to_16()
    {
        Assert.Equal(Math.Clamp(Environment.ProcessorCount, 1, 8), Single(Acme).Queues);
        Assert.Equal(1, Single(Acme + "    queues: 1\n").Queues);
        Assert.Equal(16, Single(Acme + "    queues: 16\n").Queues);
        Assert.True(Single(Acme).Offload);
        Assert.False(Single(Acme + "    offload: false\n").Offload);
    }

    [Fact]
    public void A_64_character_namespace_is_fine_and_65_is_not()
    {
        Assert.Equal(new string('n', 64), Single(Acme + $"    namespace: {new string('n', 64)}\n").Namespace);
        Assert.Equal(["tenants[0].namespace"], Errors(Acme + $"    namespace: {new string('n', 65)}\n").Select(e => e.Path));
    }

    [Fact]
    public void A_client_ca_that_is_not_a_certificate_bundle_is_an_error()
    {
        // The server would otherwise fail at start, without a path to the cause.
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("ca.crt"), "not a certificate\n");
        var error = Assert.Single(Errors(Acme + "    client-ca: ca.crt\n", temp));
        Assert.Equal("tenants[0].client-ca", error.Path);
    }

    // ---- Namespaces and pools across tenants ----------------------------------------------------------

    [Fact]
    public void Overlapping_pools_are_fine_in_different_namespaces()
    {
        var result = Parse("""
            tenants:
              - name: alpha
                pool: 10.10.0.0/24
                pool6: fd00:10::/64
              - name: beta
                pool: 10.10.0.0/16
                pool6: fd00:10::/64
              - name: gamma
                namespace: gamma-world
                pool: 10.10.0.0/24
                device: isotun-alpha
            """);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        Assert.Equal(["isotun-alpha", "isotun-beta", "gamma-world"], result.Config!.Tenants.Select(t => t.Namespace));
    }

    [Fact]
    public void Overlapping_pools_in_the_host_namespace_are_refused()
    {
        Assert.Equal(
            [new ConfigError("tenants[1].pool", "overlaps tenants[0].pool (10.10.0.0/24) in the same namespace"), new ConfigError("tenants[1].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace")],
            Errors("""
                tenants:
                  - name: alpha
                    namespace: host
                    pool: 10.10.0.0/24
                  - name: beta
                    namespace: host
                    pool: 10.10.0.128/25
                  - name: gamma
                    pool: 10.10.0.0/24
                """));
    }

    [Fact]
    public void Overlapping_IPv6_pools_in_the_host_namespace_are_refused()
    {
        Assert.Equal(
            [new ConfigError("tenants[1].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace"), new ConfigError("tenants[1].pool6", "overlaps tenants[0].pool6 (fd00:10::/64) in the same namespace")],
            Errors("""
                tenants:
                  - name: alpha
                    namespace: host
                    pool: 10.10.0.0/24
                    pool6: fd00:10::/64
                  - name: beta
                    namespace: host
                    pool: 10.11.0.0/24
                    pool6: fd00:10::/96
                  - name: gamma
                    pool: 10.12.0.0/24
                    pool6: fd00:10::/64
                """));
    }

    [Fact]
    public void Two_tenants_in_the_host_namespace_are_refused_since_they_could_reach_each_other()
    {
        var result = Parse("""
            tenants:
              - name: alpha
                namespace: host
                pool: 10.10.0.0/24
                pool6: fd00:10::/64
              - name: beta
                namespace: host
                pool: 10.11.0.0/24
                pool6: fd00:11::/64
            """);
        Assert.Equal([new ConfigError("tenants[1].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace")], result.Errors);
    }

    [Fact]
    public void A_namespace_belongs_to_one_tenant()
    {
        Assert.Equal(
            [
                new ConfigError("tenants[1].namespace", "namespace 'shared' is also used by tenants[0]"),
                new ConfigError("tenants[3].namespace", "namespace 'isotun-alpha' is also used by tenants[2]"),
            ],
            Errors("""
                tenants:
                  - name: one
                    namespace: shared
                    pool: 10.10.0.0/24
                  - name: two
                    namespace: shared
                    pool: 10.20.0.0/24
                    device: tun-two
                  - name: alpha
                    pool: 10.30.0.0/24
                  - name: beta
                    namespace: isotun-alpha
                    pool: 10.40.0.0/24
                    device: tun-beta
                """));
    }

    [Fact]
    public void Devices_clash_only_inside_one_namespace()
    {
        Assert.True(Parse("tenants:\n  - name: a\n    pool: 10.10.0.0/24\n    device: tun0\n  - name: b\n    pool: 10.10.0.0/24\n    device: tun0\n").Ok);
        Assert.Equal(
            [new ConfigError("tenants[1].device", "device 'tun0' is also used by tenants[0] in the same namespace; set device explicitly"), new ConfigError("tenants[1].namespace", "'host' is also used by tenants[0]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace")],
            Errors("tenants:\n  - name: a\n    namespace: host\n    pool: 10.10.0.0/24\n    device: tun0\n  - name: b\n    namespace: host\n    pool: 10.11.0.0/24\n    device: tun0\n"));
    }

    [Fact]
    public void A_server_name_selects_one_tenant_only()
    {
        Assert.Equal(
            [new ConfigError("tenants[1].server-names", "'vpn.alpha.example' is also a server name of tenants[0]")],
            Errors("""
                tenants:
                  - name: alpha
                    pool: 10.10.0.0/24
                    server-names: [vpn.alpha.example]
                  - name: beta
                    pool: 10.10.0.0/24
                    server-names: [vpn.beta.example, VPN.ALPHA.example]
                """));
    }

    // ---- Uplinks --------------------------------------------------------------------------------------

    [Fact]
    public void Uplink_none_in_any_spelling_is_no_uplink()
    {
        Assert.Same(UplinkConfig.None, Single(Acme + "    uplink: none\n").Uplink);
        Assert.Same(UplinkConfig.None, Single(Acme + "    uplink:\n").Uplink);
    }

    [Fact]
    public void A_veth_uplink_has_defaults_for_its_names()
    {
        var u = Single(Acme + "    uplink:\n      veth:\n        peer-namespace: acme-net\n        address: 198.18.3.1/24\n        peer-address: 198.18.3.2/24\n").Uplink;
        Assert.Equal(("veth", "acme-net", "uplink0", "u-acme"), (u.Kind, u.PeerNamespace, u.Name, u.PeerName));
        Assert.Equal(IPAddress.Parse("198.18.3.2"), u.Gateway);
    }

    [Fact]
    public void A_default_veth_peer_name_fits_the_kernel_limit()
    {
        var u = Single("tenants:\n  - name: a-very-long-tenant-name\n    pool: 10.10.0.0/24\n    uplink:\n      veth:\n        peer-namespace: n\n        address: 198.18.3.1/24\n        peer-address: 198.18.3.2/24\n").Uplink;
        Assert.True(u.PeerName!.Length <= 15, u.PeerName);
    }

    [Fact]
    public void A_link_uplink_reads_name_address_and_gateway()
    {
        var u = Single(Acme + "    uplink:\n      link:\n        name: vlan42\n        address: 10.42.0.2/24\n        gateway: 10.42.0.1\n").Uplink;
        Assert.Equal(new UplinkConfig("link", null, "vlan42", null, "10.42.0.2/24", null, IPAddress.Parse("10.42.0.1")), u);
        var bare = Single(Acme + "    uplink:\n      link:\n        name: eth1\n").Uplink;
        Assert.Equal(("link", "eth1", null, null), (bare.Kind, bare.Name, bare.Address, bare.Gateway));
    }

    [Fact]
    public void Uplink_errors_are_all_reported_with_their_paths()
    {
        var errors = Errors("""
            tenants:
              - name: a
                pool: 10.10.0.0/24
                uplink:
                  veth:
                    peer-namespace: "bad/ns"
                    name: this-name-is-too-long
                    peer-name: "x y"
                    address: 198.18.3.1
                    colour: blue
              - name: b
                pool: 10.10.0.0/24
                uplink:
                  veth:
                    address: 198.18.3.1/33
              - name: c
                pool: 10.10.0.0/24
                uplink:
                  link:
                    address: nonsense
                    gateway: 10.42.0.300
              - name: d
                pool: 10.10.0.0/24
                uplink:
                  veth: {peer-namespace: n, address: 198.18.3.1/24, peer-address: 198.18.3.2/24}
                  link: {name: eth1}
              - name: e
                namespace: host
                pool: 10.50.0.0/24
                uplink:
                  link: {name: eth1}
            """);
        Assert.Equal(
            [
                new ConfigError("tenants[0].uplink.veth.colour", "unknown key"),
                new ConfigError("tenants[0].uplink.veth.peer-namespace", "not a valid namespace name"),
                new ConfigError("tenants[0].uplink.veth.name", "must be 1-15 characters of A-Z a-z 0-9 _ . -"),
                new ConfigError("tenants[0].uplink.veth.peer-name", "must be 1-15 characters of A-Z a-z 0-9 _ . -"),
                new ConfigError("tenants[0].uplink.veth.address", "must be an address with a prefix length, e.g. 198.18.3.1/24"),
                new ConfigError("tenants[0].uplink.veth.peer-address", "required, e.g. 198.18.3.1/24"),
                new ConfigError("tenants[1].uplink.veth.peer-namespace", "required: the existing namespace the veth leads into"),
                new ConfigError("tenants[1].uplink.veth.address", "must be an address with a prefix length, e.g. 198.18.3.1/24"),
                new ConfigError("tenants[1].uplink.veth.peer-address", "required, e.g. 198.18.3.1/24"),
                new ConfigError("tenants[2].uplink.link.name", "required: the existing link to move into the tenant namespace"),
                new ConfigError("tenants[2].uplink.link.address", "must be an address with a prefix length, e.g. 198.18.3.1/24"),
                new ConfigError("tenants[2].uplink.link.gateway", "not an IP address"),
                new ConfigError("tenants[3].uplink", "give exactly one of 'veth' or 'link' (or 'none')"),
                new ConfigError("tenants[4].uplink", "a tenant in the host namespace has no uplink: the host's own routing applies"),
            ],
            errors);
    }

    [Fact]
    public void A_veth_uplink_into_another_tenants_namespace_is_refused()
    {
        // That veth would be a path between two tenants: exactly what the namespaces exist to prevent.
        var errors = Errors("""
            tenants:
              - name: alpha
                pool: 10.10.0.0/24
              - name: beta
                pool: 10.10.0.0/24
                uplink:
                  veth: {peer-namespace: isotun-alpha, address: 198.18.3.1/24, peer-address: 198.18.3.2/24}
            """);
        Assert.Equal(["tenants[1].uplink.veth.peer-namespace"], errors.Select(e => e.Path));
        Assert.Contains("tenants[0]", errors[0].Message);
    }

    [Fact]
    public void Two_tenants_veths_into_one_namespace_are_refused()
    {
        // Both tenants' routes would go into that namespace's one table: with the same pool, the second's replaced the
        // first's, and replies for the first tenant's clients went to the second's.
        var errors = Errors("""
            tenants:
              - name: alpha
                pool: 10.10.0.0/24
                uplink:
                  veth: {peer-namespace: core, address: 198.18.3.1/24, peer-address: 198.18.3.2/24}
              - name: beta
                pool: 10.10.0.0/24
                uplink:
                  veth: {peer-namespace: core, address: 198.18.4.1/24, peer-address: 198.18.4.2/24}
            """);
        Assert.Equal(["tenants[1].uplink.veth.peer-namespace"], errors.Select(e => e.Path));
        Assert.Contains("tenants[0]", errors[0].Message);
    }

    [Fact]
    public void Many_faults_across_tenants_are_reported_together()
    {
        var errors = Errors("""
            tenants:
              - name: alpha
                namespace: "no/slash"
                pool6: fd00::1/64
                max-sessions: 0
                rate-limit: 100
                client-to-client: perhaps
                lease-lifetime: -5
                allowed-ous: [""]
                server-names: ["not a name"]
              - name: beta
                pool: 10.10.0.0/24
                namespace: host
                uplink: {veth: {peer-namespace: n, address: 198.18.3.1/24, peer-address: 198.18.3.2/24}}
            """);
        Assert.Equal(
            [
                "tenants[0].pool", "tenants[0].namespace", "tenants[0].pool6", "tenants[0].allowed-ous[0]", "tenants[0].server-names[0]",
                "tenants[0].max-sessions", "tenants[0].rate-limit", "tenants[0].client-to-client", "tenants[0].lease-lifetime",
                "tenants[1].uplink",
            ],
            errors.Select(e => e.Path));
    }

    // ---- Helpers --------------------------------------------------------------------------------------

    private static ConfigLoadResult Parse(string yaml, TempDirectory? temp = null)
    {
        using var own = temp is null ? new TempDirectory() : null;
        var result = ServerConfigLoader.Parse(yaml, (temp ?? own)!.File("isotun.yaml"));
        Assert.Equal(result.Errors.Count == 0, result.Ok);
        return result;
    }

    private static IReadOnlyList<ConfigError> Errors(string yaml, TempDirectory? temp = null) => Parse(yaml, temp).Errors;

    private static TenantConfig Single(string yaml, TempDirectory? temp = null)
    {
        var result = Parse(yaml, temp);
        Assert.True(result.Ok, string.Join("\n", result.Errors));
        return Assert.Single(result.Config!.Tenants);
    }
}
