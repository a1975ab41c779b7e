using Isotun.Gateway.Configuration;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Gateway;

public sealed class GatewayConfigLoaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private GatewayConfigLoadResult Parse(string yaml) => GatewayConfigLoader.Parse(yaml, _dir.File("gateway.yaml"));

    [Fact]
    public void Admin_hosts_are_read_and_a_wrong_one_is_named()
    {
        var ok = Parse("admin:\n  hosts: [Scrape.Example.net]\nroutes:\n  - sni: a.example\n    passthrough: { backend: 198.18.21.2:443 }\n");
        Assert.True(ok.Ok, string.Join("; ", ok.Errors));
        Assert.Equal(["scrape.example.net"], ok.Config!.AdminHosts);
        var bad = Parse("admin:\n  hosts: [\"127.0.0.1\"]\nroutes:\n  - sni: a.example\n    passthrough: { backend: 198.18.21.2:443 }\n");
        Assert.Equal("admin.hosts[0]", Assert.Single(bad.Errors).Path);
    }

    [Fact]
    public void A_hybrid_config_loads_with_defaults()
    {
        var pki = new PkiDirectory(_dir.File("pki"));
        pki.InitCa();
        pki.IssueServer("vpn.initech.example", [], []);
        var r = Parse("""
            listen: 198.18.20.1:443
            routes:
              - sni: VPN.Acme.Example
                passthrough: { backend: 198.18.21.2:443 }
              - sni: "*.globex.example"
                name: globex
                passthrough: { backend: 198.18.22.2:443, proxy-protocol: true }
              - sni: vpn.initech.example
                terminate:
                  certificate: pki/vpn.initech.example.crt
                  key: pki/vpn.initech.example.key
                  client-ca: pki/ca.crt
                  backend: 198.18.23.2:8443
            """);
        Assert.True(r.Ok, string.Join("\n", r.Errors));
        var c = r.Config!;
        Assert.Equal(3, c.Routes.Count);
        Assert.Equal("vpn.acme.example", c.Routes[0].Sni);
        Assert.Equal("vpn.acme.example", c.Routes[0].Name);
        Assert.False(c.Routes[0].ProxyProtocol);
        Assert.Equal("*.globex.example", c.Routes[1].Sni);
        Assert.True(c.Routes[1].ProxyProtocol);
        Assert.Equal(RouteMode.Terminate, c.Routes[2].Mode);
        Assert.True(c.Routes[2].ProxyProtocol); // the default when terminating
        Assert.False(c.Routes[2].Terminate!.ClientCertificateRequired);
        Assert.Equal(_dir.File("pki/ca.crt"), c.Routes[2].Terminate!.ClientCa);
        Assert.Equal(UnmatchedAction.Reject, c.NoSni);
        Assert.Equal(GatewayLimits.Defaults, c.Limits);
        Assert.Equal("127.0.0.1:9420", c.Admin!.ToString());
    }

    [Fact]
    public void Every_error_is_reported_with_its_path()
    {
        File.WriteAllText(_dir.File("open.key"), "x");
        File.SetUnixFileMode(_dir.File("open.key"), UnixFileMode.UserRead | UnixFileMode.OtherRead);
        var r = Parse("""
            listen: 198.18.20.1
            lisen: x
            routes:
              - sni: a.example
                passthrough: { backend: 198.18.21.2:443 }
              - sni: A.example
                passthrough: { backend: 198.18.21.3:443 }
              - sni: "b..example"
                passthrough: { backend: 198.18.21.2:443 }
              - sni: c.example
              - sni: d.example
                passthrough: { backend: 198.18.21.2:443 }
                terminate: { backend: 198.18.21.2:443 }
              - sni: e.example
                terminate:
                  certificate: missing.crt
                  key: open.key
                  client-certificate: required
                  backend: 198.18.21.2:443
                  proxy-protocol: maybe
            no-sni: default
            non-tls: drop
            limits:
              preread-timeout: 0
              per-ip-burst: 1
              idle-timeout: 5
            """);
        Assert.False(r.Ok);
        string[] expected =
        [
            "listen", "lisen", "routes[1].sni", "routes[2].sni", "routes[3]", "routes[4]", "routes[5].terminate.certificate",
            "routes[5].terminate.key", "routes[5].terminate.client-certificate", "routes[5].terminate.proxy-protocol",
            "no-sni", "non-tls", "limits.preread-timeout", "limits.per-ip-burst", "limits.idle-timeout",
        ];
        foreach (var path in expected) Assert.True(r.Errors.Any(e => e.Path == path), $"no error at {path}:\n{string.Join("\n", r.Errors)}");
        Assert.Contains(r.Errors, e => e.Path == "lisen" && e.Message.Contains("did you mean 'listen'"));
        Assert.Contains(r.Errors, e => e.Path == "routes[1].sni" && e.Message.Contains("duplicate 'a.example' (also routes[0])"));
        Assert.Contains(r.Errors, e => e.Path == "routes[5].terminate.key" && e.Message.Contains("chmod 600"));
    }

    [Theory]
    [InlineData(null, 300)]
    [InlineData("0", 0)]
    [InlineData("10", 10)]
    [InlineData("86400", 86400)]
    public void The_relay_idle_timeout_defaults_to_five_minutes_and_0_turns_it_off(string? value, int seconds)
    {
        var limits = value is null ? "" : $"limits:\n  idle-timeout: {value}\n";
        var r = Parse("routes:\n  - sni: a.example\n    passthrough: { backend: 198.18.21.2:443 }\n" + limits);
        Assert.True(r.Ok, string.Join("\n", r.Errors));
        Assert.Equal(TimeSpan.FromSeconds(seconds), r.Config!.Limits.IdleTimeout);
    }

    [Theory]
    [InlineData("9", "must be 0 (never) or at least 10 seconds")]
    [InlineData("86401", "must be between 0 and 86400")]
    [InlineData("-1", "must be between 0 and 86400")]
    public void A_bad_relay_idle_timeout_is_refused(string value, string message)
    {
        var r = Parse($"routes:\n  - sni: a.example\n    passthrough: {{ backend: 198.18.21.2:443 }}\nlimits:\n  idle-timeout: {value}\n");
        Assert.Contains(r.Errors, e => e.Path == "limits.idle-timeout" && e.Message == message);
    }

    [Fact]
    public void Non_tls_to_default_needs_a_passthrough_default()
    {
        var r = Parse("""
            routes: []
            default:
              terminate: { certificate: a.crt, key: a.key, backend: 198.18.21.2:443 }
            non-tls: default
            """);
        Assert.Contains(r.Errors, e => e.Path == "non-tls" && e.Message.Contains("passthrough"));
    }

    [Fact]
    public void A_config_without_routes_is_refused()
    {
        var r = Parse("listen: 127.0.0.1:443\n");
        Assert.Contains(r.Errors, e => e.Path == "routes");
    }

    [Fact]
    public void The_example_parses_apart_from_its_certificate_files()
    {
        var r = Parse(GatewayConfigLoader.Example());
        Assert.All(r.Errors, e => Assert.StartsWith("routes[2].terminate.", e.Path));
    }
}
