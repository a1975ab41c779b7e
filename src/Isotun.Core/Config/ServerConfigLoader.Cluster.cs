namespace Isotun.Config;

/// <summary>The optional <c>cluster</c> section: the etcd this server shares state through.</summary>
public static partial class ServerConfigLoader
{
    private static readonly string[] ClusterKeys = ["etcd", "node", "prefix"];

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
        return name is null || endpoints.Count == 0 ? null : new ClusterConfig(endpoints, name, prefix);
    }
}
