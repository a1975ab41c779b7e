namespace Isotun.Server.Configuration;

/// <summary>How a cluster node reaches etcd over TLS: the <c>cluster.tls</c> section, with absolute paths.</summary>
/// <param name="Ca">PEM bundle of the CAs that sign etcd's server certificate; the only roots trusted for etcd.</param>
/// <param name="Certificate">PEM client certificate for etcd's <c>--client-cert-auth</c>, or null.</param>
/// <param name="Key">Its PEM private key (mode 0600), set exactly when <paramref name="Certificate"/> is.</param>
public sealed record ClusterTlsConfig(string Ca, string? Certificate, string? Key);
