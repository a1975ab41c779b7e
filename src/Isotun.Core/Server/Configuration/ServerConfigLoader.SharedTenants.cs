using System.Text;
using Isotun.Config;

namespace Isotun.Server.Configuration;

/// <summary>The tenants of a cluster that shares them (<c>cluster.share-tenants</c>): one YAML document in the store.</summary>
public static partial class ServerConfigLoader
{
    private static readonly string[] SharedTenantsKeys = ["tenants"];

    /// <summary>The most a tenants document may hold: what one value in the cluster's store takes.</summary>
    public const int MaxSharedTenantsBytes = Isotun.State.Cluster.KeyValueLimits.MaxValueBytes;

    /// <summary>With <c>cluster.share-tenants</c>, the file holds no tenants: they come from the cluster.</summary>
    private static List<TenantConfig> NoTenantsHere(ConfigWalker walker, YamlTreeNode? node)
    {
        if (!ConfigWalker.IsAbsent(node))
            walker.Error("tenants", "cluster.share-tenants is on, so the tenants come from the cluster: remove them here, and publish them with `isotun cluster push-tenants FILE`");
        return [];
    }

    /// <summary>
    /// Reads a shared tenants document: a mapping whose one key is <c>tenants</c>, written exactly as the section of a
    /// server's configuration file, and checked the same way (every error listed). Relative paths in it (password
    /// files, CAs, CRLs) are resolved against the directory of <paramref name="configPath"/>, the node's own
    /// configuration file, so each node finds them in its own place.
    /// </summary>
    public static TenantsLoadResult ParseTenants(string yaml, string configPath)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        if (Encoding.UTF8.GetByteCount(yaml) > MaxSharedTenantsBytes)
            return new TenantsLoadResult(null, [new ConfigError("(file)", $"larger than {MaxSharedTenantsBytes / 1024} KiB, the most one value in the cluster's store holds")]);
        var fullSource = Path.GetFullPath(configPath);
        var walker = new ConfigWalker(Path.GetDirectoryName(fullSource) ?? "/");
        if (!YamlTreeReader.TryRead(yaml, out var root, out var syntaxError)) return new TenantsLoadResult(null, [syntaxError!]);
        var mapping = walker.Mapping(root, string.Empty);
        if (mapping is null)
        {
            if (ConfigWalker.IsAbsent(root)) walker.Error("tenants", "at least one tenant is required");
            return new TenantsLoadResult(null, walker.Errors);
        }
        var keys = walker.Keys(mapping, string.Empty, SharedTenantsKeys);
        var tenants = ReadTenants(walker, keys.GetValueOrDefault("tenants"));
        CheckClusterPool6(walker, tenants);
        return walker.Errors.Count > 0 ? new TenantsLoadResult(null, walker.Errors) : new TenantsLoadResult(tenants, []);
    }
}

/// <summary>The tenants read from a shared tenants document, or every error found in it.</summary>
public sealed record TenantsLoadResult(IReadOnlyList<TenantConfig>? Tenants, IReadOnlyList<ConfigError> Errors)
{
    public bool Ok => Tenants is not null && Errors.Count == 0;
}
