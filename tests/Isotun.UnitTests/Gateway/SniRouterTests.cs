using Isotun.Gateway.Routing;

namespace Isotun.UnitTests.Gateway;

public class SniRouterTests
{
    private static readonly SniRouter<string> Router = new(
        [("vpn.acme.example", "acme"), ("*.globex.example", "globex"), ("*.eu.globex.example", "globex-eu"), ("globex.example", "globex-apex")],
        "default");

    [Theory]
    [InlineData("vpn.acme.example", "acme")]
    [InlineData("a.globex.example", "globex")]
    [InlineData("a.b.globex.example", "globex")]
    [InlineData("x.eu.globex.example", "globex-eu")]
    [InlineData("eu.globex.example", "globex")]
    [InlineData("globex.example", "globex-apex")]
    [InlineData("acme.example", "default")]
    [InlineData("vpn.acme.example.evil", "default")]
    [InlineData("xglobex.example", "default")]
    [InlineData(null, "default")]
    [InlineData("", "default")]
    public void Exact_then_longest_wildcard_then_default(string? sni, string expected) => Assert.Equal(expected, Router.Match(sni));

    [Fact]
    public void Without_a_default_unknown_names_match_nothing()
    {
        var router = new SniRouter<string>([("a.example", "a")], null);
        Assert.Null(router.Match("b.example"));
        Assert.Null(router.Match(null));
        Assert.Equal("a", router.Match("a.example"));
    }
}
