using Isotun.Config;
namespace Isotun.Server.Configuration;

/// <summary>The optional <c>cluster</c> section: the etcd this server shares state through.</summary>
public static partial class ServerConfigLoader
{
    private static readonly string[] ClusterKeys = ["etcd", "node", "prefix", "tls", "auth", "binding-ttl-days", "share-tenants"];
    private static readonly string[] ClusterTlsKeys = ["ca", "certificate", "key"];
    private static readonly string[] ClusterAuthKeys = ["user", "password-file"];

    private static ClusterConfig? ReadCluster(ConfigWalker walker, YamlTreeNode? node)
    {
        if (ConfigWalker.IsAbsent(node)) return null;
        var keys = walker.Keys(walker.Mapping(node, "cluster"), "cluster", ClusterKeys);
        var endpoints = new List<string>();
        foreach (var (text, path) in walker.TextList(keys.GetValueOrDefault("etcd"), "cluster.etcd"))
        {
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Port > 0
                && uri.AbsolutePath == "/" && string.IsNullOrEmpty(uri.Query) && string.IsNullOrEmpty(uri.UserInfo))
                endpoints.Add($"{uri.Scheme}://{uri.Authority}");
            else walker.Error(path, "must be an etcd client URL such as http://10.0.0.5:2379");
        }
        if (endpoints.Count == 0 && ConfigWalker.IsAbsent(keys.GetValueOrDefault("etcd")))
            walker.Error("cluster.etcd", "required: the etcd client URLs, e.g. [http://10.0.0.5:2379]");
        var name = walker.Text(keys.GetValueOrDefault("node"), "cluster.node");
        if (name is null) walker.Error("cluster.node", "required: this node's name, unique in the cluster");
        else if (name.Length is 0 or > 63 || name[0] == '-' || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            walker.Error("cluster.node", "must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit");
        var prefix = walker.Text(keys.GetValueOrDefault("prefix"), "cluster.prefix") ?? "/isotun";
        if (!prefix.StartsWith('/') || prefix.EndsWith('/') || prefix.Length > 128 || prefix.Any(c => c <= ' ' || c > '~'))
            walker.Error("cluster.prefix", "must start with '/', not end with one, and be at most 128 printable characters, e.g. /isotun");
        var tls = ReadClusterTls(walker, keys.GetValueOrDefault("tls"), endpoints);
        var auth = ReadClusterAuth(walker, keys.GetValueOrDefault("auth"));
        var bindingTtl = walker.Integer(keys.GetValueOrDefault("binding-ttl-days"), "cluster.binding-ttl-days", ClusterConfig.DefaultBindingTtlDays, 1, 3650);
        var shareTenants = walker.Boolean(keys.GetValueOrDefault("share-tenants"), "cluster.share-tenants", false);
        return name is null || endpoints.Count == 0 ? null
            : new ClusterConfig(endpoints, name, prefix) { Tls = tls, Auth = auth, BindingTtl = TimeSpan.FromDays(bindingTtl), ShareTenants = shareTenants };
    }

    /// <summary>
    /// On a cluster node a client's IPv6 address sits at the same place in <c>pool6</c> as its IPv4 address in
    /// <c>pool</c> (so it is the same on every node): <c>pool6</c> must hold at least as many addresses.
    /// </summary>
    private static void CheckClusterPool6(ConfigWalker walker, IReadOnlyList<TenantConfig> tenants)
    {
        for (int i = 0; i < tenants.Count; i++)
        {
            if (tenants[i].Pool6 is not { } pool6 || tenants[i].Pool is not { Network: not null } pool) continue;
            int needed = 128 - (32 - pool.PrefixLength);
            if (pool6.PrefixLength > needed)
                walker.Error($"{ConfigWalker.Item("tenants", i)}.pool6",
                    $"on a cluster node a client's IPv6 address follows its IPv4 one (the same place in the pool), so pool6 must hold as many addresses as pool ({pool}): use /{needed} or shorter");
        }
    }

    /// <summary><c>cluster.auth</c>: the etcd user this node logs in as, and its password in a file only its owner may read.</summary>
    private static ClusterAuthConfig? ReadClusterAuth(ConfigWalker walker, YamlTreeNode? node)
    {
        if (ConfigWalker.IsAbsent(node)) return null;
        var keys = walker.Keys(walker.Mapping(node, "cluster.auth"), "cluster.auth", ClusterAuthKeys);
        var user = walker.Text(keys.GetValueOrDefault("user"), "cluster.auth.user");
        if (user is null) walker.Error("cluster.auth.user", "required: the etcd user this node logs in as");
        else if (user.Length is 0 or > 128 || user.Any(c => c <= ' ' || c > '~'))
            walker.Error("cluster.auth.user", "must be 1-128 printable characters without spaces");
        var passwordFile = walker.FilePath(keys.GetValueOrDefault("password-file"), "cluster.auth.password-file");
        if (passwordFile is null)
        {
            if (ConfigWalker.IsAbsent(keys.GetValueOrDefault("password-file")))
                walker.Error("cluster.auth.password-file", "required: a file (mode 0600) whose first line is the etcd user's password");
        }
        else if (!File.Exists(passwordFile)) walker.Error("cluster.auth.password-file", $"file not found: {passwordFile}");
        else if (Isotun.Security.SecretFile.OpenToOthers(passwordFile))
            walker.Error("cluster.auth.password-file", $"{passwordFile} must not be readable by group or others (chmod 600)");
        return user is null || passwordFile is null ? null : new ClusterAuthConfig(user, passwordFile);
    }

    /// <summary>
    /// <c>cluster.tls</c>, for <c>https://</c> endpoints: a CA is required (the system's trust store is not used, so a
    /// node trusts only the CA that signs etcd's certificate), a client certificate is optional.
    /// </summary>
    private static ClusterTlsConfig? ReadClusterTls(ConfigWalker walker, YamlTreeNode? node, List<string> endpoints)
    {
        // The etcd client speaks TLS to all its endpoints or to none.
        var https = endpoints.Count(e => e.StartsWith("https://", StringComparison.Ordinal));
        if (https > 0 && https < endpoints.Count)
            walker.Error("cluster.etcd", "mixes http:// and https:// endpoints: give them all the same scheme");
        var mapping = walker.Mapping(node, "cluster.tls");
        if (mapping is not null && endpoints.Count > 0 && https == 0)
            walker.Error("cluster.tls", "is for https:// endpoints, and cluster.etcd lists http:// ones only: use https:// URLs, or remove cluster.tls");

        var keys = walker.Keys(mapping, "cluster.tls", ClusterTlsKeys);
        var ca = walker.FilePath(keys.GetValueOrDefault("ca"), "cluster.tls.ca");
        if (ca is not null) PemFileCheck.Bundle(walker, ca, "cluster.tls.ca");
        else if (https > 0 && ConfigWalker.IsAbsent(keys.GetValueOrDefault("ca")))
            walker.Error("cluster.tls.ca", "required for https:// endpoints: the PEM file of the CA that signs etcd's certificate (the system's trust store is not used)");

        var certificate = walker.FilePath(keys.GetValueOrDefault("certificate"), "cluster.tls.certificate");
        var key = walker.FilePath(keys.GetValueOrDefault("key"), "cluster.tls.key");
        var certificateGiven = !ConfigWalker.IsAbsent(keys.GetValueOrDefault("certificate"));
        if (certificateGiven != !ConfigWalker.IsAbsent(keys.GetValueOrDefault("key")))
            walker.Error(certificateGiven ? "cluster.tls.key" : "cluster.tls.certificate", $"required when {(certificateGiven ? "cluster.tls.certificate" : "cluster.tls.key")} is set");
        else if (certificate is not null && key is not null)
            PemFileCheck.CertificateAndKey(walker, certificate, "cluster.tls.certificate", key, "cluster.tls.key");

        return https > 0 && ca is not null ? new ClusterTlsConfig(ca, certificate, key) : null;
    }
}
