using System.Collections.Concurrent;
using System.Net;

namespace Isotun.Transport.Listening;

/// <summary>
/// A global cap on open connections and a cap per source (<see cref="SourceKey"/>: an IPv4 address or an IPv6 /64).
/// It refuses with <see cref="AdmissionRefusal.GlobalCap"/> or <see cref="AdmissionRefusal.SourceCap"/>. The caps can change at any time (a reload); open
/// connections are never closed by a lower cap. The table holds only sources with open connections.
/// </summary>
public sealed class ConcurrencyCaps(int maxConnections, int perSource) : IConnectionAdmission
{
    private readonly ConcurrentDictionary<IPAddress, int> _bySource = new();
    private int _active;
    private (int Max, int PerSource) _caps = (maxConnections, perSource);

    public int Active => Volatile.Read(ref _active);

    public void Update(int max, int perSourceCap) => _caps = (max, perSourceCap);

    public AdmissionRefusal? Admit(IPAddress source)
    {
        var (max, per) = _caps;
        var key = SourceKey.Of(source);
        if (Interlocked.Increment(ref _active) > max)
        {
            Interlocked.Decrement(ref _active);
            return AdmissionRefusal.GlobalCap;
        }
        int now = _bySource.AddOrUpdate(key, 1, static (_, n) => n + 1);
        if (now > per)
        {
            Release(source);
            return AdmissionRefusal.SourceCap;
        }
        return null;
    }

    public void Release(IPAddress source)
    {
        var key = SourceKey.Of(source);
        Interlocked.Decrement(ref _active);
        while (_bySource.TryGetValue(key, out int n))
        {
            if (n <= 1 ? _bySource.TryRemove(new KeyValuePair<IPAddress, int>(key, n)) : _bySource.TryUpdate(key, n - 1, n)) return;
        }
    }
}
