using Isotun.Protocol.Addressing;
using Isotun.Protocol.Ip;

namespace Isotun.Server;

/// <summary>
/// A site at run time: networks behind one user's client, the session that carries them now, and the bytes that
/// crossed. <see cref="RxBytes"/> counts packets from the site's subnets, <see cref="TxBytes"/> packets to them.
/// </summary>
public sealed class Site(string name, string user, IReadOnlyList<IpNetwork> subnets, int index)
{
    public string Name { get; } = name;
    public string User { get; } = user;
    public IReadOnlyList<IpNetwork> Subnets { get; } = subnets;

    /// <summary>The site's place in its <see cref="SiteTable"/>'s policy.</summary>
    internal int Index { get; } = index;

    private readonly PrefixMatch[] _prefixes = subnets.Select(PrefixMatch.Of).ToArray();
    private TenantSession? _owner;
    private long _rxBytes, _txBytes;

    /// <summary>The session the site's subnets are routed to; null while the user has no live tunnel.</summary>
    public TenantSession? Owner => Volatile.Read(ref _owner);

    internal void SetOwner(TenantSession? session) => Volatile.Write(ref _owner, session);

    public long RxBytes => Interlocked.Read(ref _rxBytes);
    public long TxBytes => Interlocked.Read(ref _txBytes);

    internal void CountRx(int bytes) => Interlocked.Add(ref _rxBytes, bytes);
    internal void CountTx(int bytes) => Interlocked.Add(ref _txBytes, bytes);

    /// <summary>Keeps the counts of the same site before a reload.</summary>
    internal void CarryCounts(Site before)
    {
        _rxBytes = before.RxBytes;
        _txBytes = before.TxBytes;
    }

    /// <summary>Is <paramref name="address"/> inside one of the site's subnets? No allocation.</summary>
    public bool Contains(IpKey address)
    {
        foreach (var p in _prefixes)
            if (p.Contains(address)) return true;
        return false;
    }
}
