using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;
using Isotun.Server.Configuration;

namespace Isotun.Server;

/// <summary>
/// A tenant's sites and its east-west policy, read from its config and swapped whole on a reload, so the packet path
/// reads it without a lock. Lookups allocate nothing.
/// </summary>
public sealed class SiteTable
{
    public static readonly SiteTable Empty = new([], null);

    // Every subnet of every site, longest prefix first, so the first match is the most specific.
    private readonly (PrefixMatch Prefix, Site Site)[] _prefixes;
    private readonly Dictionary<string, Site> _byUser;
    // links[a * width + b]: may a reach b? Index Sites.Count stands for the clients without a site.
    private readonly bool[] _links;
    private readonly int _width;

    private SiteTable(IReadOnlyList<Site> sites, IReadOnlyList<SiteLink>? policy)
    {
        Sites = sites;
        _byUser = sites.ToDictionary(s => s.User, StringComparer.Ordinal);
        _prefixes = sites.SelectMany(s => s.Subnets.Select(n => (PrefixMatch.Of(n), s)))
            .OrderByDescending(p => p.Item1.PrefixLength).ToArray();
        _width = sites.Count + 1;
        _links = new bool[_width * _width];
        string NameAt(int i) => i == sites.Count ? TenantConfig.ClientsName : sites[i].Name;
        for (int a = 0; a < _width; a++)
            for (int b = 0; b < _width; b++)
                _links[a * _width + b] = a == b || policy is null || policy.Any(l => l.Joins(NameAt(a), NameAt(b)));
    }

    /// <summary>
    /// The table for <paramref name="config"/>. Sites of <paramref name="before"/> with the same name and user keep
    /// their byte counts; owners are set by the tenant afterwards.
    /// </summary>
    public static SiteTable Build(TenantConfig config, SiteTable? before = null)
    {
        if (config.Sites.Count == 0) return Empty;
        var sites = new List<Site>();
        foreach (var s in config.Sites)
        {
            var site = new Site(s.Name, s.User, s.Subnets, sites.Count);
            if (before?.Sites.FirstOrDefault(b => b.Name == s.Name && b.User == s.User) is { } old) site.CarryCounts(old);
            sites.Add(site);
        }
        return new SiteTable(sites, config.EastWest);
    }

    public IReadOnlyList<Site> Sites { get; }

    public bool IsEmpty => Sites.Count == 0;

    /// <summary>The site whose subnets hold <paramref name="address"/>, most specific first.</summary>
    public Site? Match(IpKey address)
    {
        foreach (var (prefix, site) in _prefixes)
            if (prefix.Contains(address)) return site;
        return null;
    }

    /// <summary>The site <paramref name="user"/> carries, if any.</summary>
    public Site? OfUser(string user) => _byUser.GetValueOrDefault(user);

    /// <summary>
    /// May <paramref name="from"/> reach <paramref name="to"/>? Null stands for the tenant's clients without a site. A
    /// site of another table (a packet read one table while a reload swapped in the next) reaches nothing here: its
    /// index means another site in this table, or none.
    /// </summary>
    public bool Allows(Site? from, Site? to) => Slot(from) is int a && Slot(to) is int b && _links[a * _width + b];

    /// <summary>A site's row and column in the links: its index if it is this table's, Sites.Count for none.</summary>
    private int? Slot(Site? site) =>
        site is null ? Sites.Count : site.Index < Sites.Count && ReferenceEquals(Sites[site.Index], site) ? site.Index : null;

    /// <summary>The subnets a client carrying <paramref name="own"/> (null: none) may reach: the routes to push to it.</summary>
    public IEnumerable<IpNetwork> RoutesFor(Site? own) =>
        Sites.Where(s => s != own && Allows(own, s)).SelectMany(s => s.Subnets);

    /// <summary>Every subnet of every site: what the tenant's namespace routes to its TUN.</summary>
    public IEnumerable<IpNetwork> Subnets => Sites.SelectMany(s => s.Subnets);
}
