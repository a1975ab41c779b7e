using System.Net;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Gateway;

/// <summary>The server's <c>proxy</c> section: the listener behind an edge gateway.</summary>
public sealed class ServerProxyConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ConfigLoadResult Parse(string proxy) => ServerConfigLoader.Parse($"""
        listen: 198.18.23.2:443
        {proxy}
        tenants:
          - name: initech
            pool: 10.33.0.0/24
        """, _dir.File("server.yaml"));

    [Fact]
    public void Absent_means_no_proxy_listener()
    {
        var r = Parse("");
        Assert.True(r.Ok, string.Join("\n", r.Errors));
        Assert.Null(r.Config!.Proxy);
    }

    [Fact]
    public void A_valid_section_loads()
    {
        var r = Parse("proxy: { listen: 198.18.23.2:8443, trusted-gateways: [198.18.23.1, 10.0.0.0/8, \"2001:db8::/32\"], header-timeout: 3 }");
        Assert.True(r.Ok, string.Join("\n", r.Errors));
        var p = r.Config!.Proxy!;
        Assert.Equal(IPEndPoint.Parse("198.18.23.2:8443"), p.Listen);
        Assert.Equal(TimeSpan.FromSeconds(3), p.HeaderTimeout);
        Assert.True(p.Trusts(IPAddress.Parse("198.18.23.1")));
        Assert.True(p.Trusts(IPAddress.Parse("::ffff:10.1.2.3")));
        Assert.True(p.Trusts(IPAddress.Parse("2001:db8::5")));
        Assert.False(p.Trusts(IPAddress.Parse("198.18.23.9")));
        Assert.False(p.Tls); // plaintext after the header unless asked
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("yes", true)]
    [InlineData("false", false)]
    public void Tls_after_the_header_is_asked_for_with_tls(string value, bool tls)
    {
        var r = Parse($"proxy: {{ listen: 198.18.23.2:8443, trusted-gateways: [198.18.23.1], tls: {value} }}");
        Assert.True(r.Ok, string.Join("\n", r.Errors));
        Assert.Equal(tls, r.Config!.Proxy!.Tls);
    }

    [Fact]
    public void Every_error_has_its_path()
    {
        var r = Parse("proxy: { listen: 198.18.23.2:443, trusted-gateways: [10.0.0.1/8, nonsense], header-timeout: 0, trust: all, tls: maybe }");
        Assert.False(r.Ok);
        foreach (var path in new[] { "proxy.listen", "proxy.trusted-gateways[0]", "proxy.trusted-gateways[1]", "proxy.header-timeout", "proxy.trust", "proxy.tls" })
            Assert.True(r.Errors.Any(e => e.Path == path), $"no error at {path}:\n{string.Join("\n", r.Errors)}");
        Assert.Contains(r.Errors, e => e.Path == "proxy.trusted-gateways[0]" && e.Message.Contains("did you mean 10.0.0.0/8"));
    }

    [Fact]
    public void Trusting_nobody_is_an_error()
    {
        var r = Parse("proxy: { listen: 198.18.23.2:8443 }");
        Assert.Contains(r.Errors, e => e.Path == "proxy.trusted-gateways");
    }
}
