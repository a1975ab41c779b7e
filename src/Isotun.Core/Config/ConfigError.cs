namespace Isotun.Config;

/// <summary>One configuration problem; <see cref="Path"/> is the key path, e.g. <c>tenants[1].pool</c>.</summary>
public sealed record ConfigError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}
