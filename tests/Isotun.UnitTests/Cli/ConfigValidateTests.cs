using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Cli;

/// <summary>`isotun config validate` checks gateway files too: found by their top-level `routes:`, or with --gateway.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConfigValidateTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private const string GoodGateway = """
        listen: 127.0.0.1:8443
        admin:
          listen: off
        routes:
          - sni: vpn.acme.example
            passthrough:
              backend: 198.18.0.1:443
        """;

    [Fact]
    public async Task A_good_gateway_file_validates_on_its_own_and_with_the_flag()
    {
        File.WriteAllText(_temp.File("gateway.yaml"), GoodGateway);
        var r = await ConsoleCapture.RunAsync(_temp.Path, null, "config", "validate", "gateway.yaml");
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("gateway.yaml: ok", r.Out);
        Assert.Equal(0, (await ConsoleCapture.RunAsync(_temp.Path, null, "config", "validate", "--gateway", "gateway.yaml")).ExitCode);
    }

    [Fact]
    public async Task A_bad_gateway_file_lists_every_error_with_its_path_including_a_missing_certificate()
    {
        File.WriteAllText(_temp.File("gateway.yaml"), """
            listen: 127.0.0.1:8443
            routes:
              - sni: vpn.acme.example
                passthrough:
                  backend: not-an-endpoint
              - sni: vpn.beta.example
                terminate:
                  certificate: missing.crt
                  key: missing.key
                  backend: 198.18.0.2:443
            bogus: 1
            """);
        var r = await ConsoleCapture.RunAsync(_temp.Path, null, "config", "validate", "gateway.yaml", "--json");
        Assert.Equal(2, r.ExitCode);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Out);
        Assert.False(doc.RootElement.GetProperty("ok").GetBoolean());
        var paths = doc.RootElement.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("path").GetString()).ToList();
        Assert.Contains("bogus", paths);
        Assert.Contains(paths, p => p!.StartsWith("routes[0]", StringComparison.Ordinal));
        Assert.Contains(paths, p => p!.StartsWith("routes[1]", StringComparison.Ordinal));
    }
}

/// <summary>`isotun pki` ends every failure in one line and an exit code, never a stack trace.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class PkiCommandErrorTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("pki", "pin", "")]
    [InlineData("pki", "init", "--dir", "")]
    public async Task An_empty_path_is_a_usage_error_in_one_line(params string[] args)
    {
        var r = await ConsoleCapture.RunAsync(_temp.Path, null, args);
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}: {r.Error}");
        Assert.StartsWith("isotun pki: ", r.Error);
        Assert.DoesNotContain("   at ", r.Error);
    }
}
