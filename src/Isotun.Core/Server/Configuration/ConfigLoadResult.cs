using Isotun.Config;
namespace Isotun.Server.Configuration;

/// <summary>Either a configuration or every error found in it.</summary>
public sealed record ConfigLoadResult(ServerConfig? Config, IReadOnlyList<ConfigError> Errors)
{
    public bool Ok => Config is not null && Errors.Count == 0;
}
