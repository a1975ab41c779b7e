using System.Text;
using Isotun.Gateway.Configuration;

namespace Isotun.Fuzz.Targets;

/// <summary>A gateway config file's text (UTF-8), validated as <c>isotun gateway</c> does at start and on reload.</summary>
public sealed class GatewayConfigTarget : IFuzzTarget
{
    public string Name => "gateway-config";

    public string Description => "the gateway's YAML config (GatewayConfigLoader.Parse)";

    public void Run(ReadOnlySpan<byte> input)
    {
        var result = GatewayConfigLoader.Parse(Encoding.UTF8.GetString(input), ServerConfigTarget.SourcePath);
        Invariant.That((result.Config is null) == (result.Errors.Count > 0));
        foreach (var error in result.Errors)
        {
            Invariant.That(error.Path is not null && !string.IsNullOrEmpty(error.Message));
        }
    }
}
