namespace Isotun.Server.Configuration;

/// <summary>
/// The cluster this server is a node of: the etcd it shares state through, its own name, and the key prefix of its
/// cluster. Null in <see cref="ServerConfig.Cluster"/> for one node on its own.
/// </summary>
/// <param name="Etcd">etcd client URLs, e.g. <c>http://10.0.0.5:2379</c>; all <c>https://</c> exactly when <see cref="Tls"/> is set.</param>
/// <param name="Node">This node's name, unique in the cluster: <c>[a-z0-9][a-z0-9-]{0,62}</c>.</param>
/// <param name="Prefix">Where the cluster's keys live in etcd, e.g. <c>/isotun</c> (several clusters may share one etcd).</param>
public sealed record ClusterConfig(IReadOnlyList<string> Etcd, string Node, string Prefix)
{
    /// <summary>TLS to etcd, for <c>https://</c> endpoints; null for <c>http://</c> ones.</summary>
    public ClusterTlsConfig? Tls { get; init; }

    /// <summary>The etcd user this node logs in as, when etcd has authentication on; null otherwise.</summary>
    public ClusterAuthConfig? Auth { get; init; }

    public const int DefaultBindingTtlDays = 30;

    /// <summary>A user's address binding not used for this long (and held by no session) is released.</summary>
    public TimeSpan BindingTtl { get; init; } = TimeSpan.FromDays(DefaultBindingTtlDays);

    /// <summary>
    /// The tenants come from the cluster (<c>isotun cluster push-tenants</c>), the same on every node and applied live
    /// when they change, instead of from this file's <c>tenants</c>.
    /// </summary>
    public bool ShareTenants { get; init; }
}

/// <summary><c>cluster.auth</c>: an etcd user, and the file (mode 0600) whose first line is its password.</summary>
public sealed record ClusterAuthConfig(string User, string PasswordFile);
