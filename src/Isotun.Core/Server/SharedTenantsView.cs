namespace Isotun.Server;

/// <summary>
/// With <c>cluster.share-tenants</c>: the newest revision of the tenants published in the cluster that this node knows,
/// the revision it runs, and, when it does not run the newest, why (the errors on this node, or what could not be
/// applied live).
/// </summary>
public sealed record SharedTenantsView(long Published, long Applied, string? Error)
{
    /// <summary>The node runs older tenants than the cluster's (a publish it refused, or one it has yet to apply).</summary>
    public bool Stale => Applied < Published;
}
