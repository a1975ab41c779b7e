using System.Net;
using Isotun.Config;

namespace Isotun.Server.Configuration;

/// <summary>The whole server configuration, immutable, with every default applied and every path absolute.</summary>
public sealed record ServerConfig(
    IPEndPoint Listen,
    TlsConfig Tls,
    AdminConfig Admin,
    string StatePath,
    CookieConfig Cookie,
    LimitsConfig Limits,
    IReadOnlyList<TenantConfig> Tenants,
    string SourcePath)
{
    /// <summary>The plaintext + PROXY v2 listener for an edge gateway that terminates TLS; null when not configured.</summary>
    public ProxyConfig? Proxy { get; init; }

    /// <summary>The cluster this server is a node of (state shared through etcd); null for one node on its own.</summary>
    public ClusterConfig? Cluster { get; init; }
}
