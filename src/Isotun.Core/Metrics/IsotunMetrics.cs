using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Isotun.Metrics;

/// <summary>
/// The server's instruments. Labels are bounded: tenant names come from the config (never from the
/// peer), reasons and results from fixed enums. Per-packet traffic is kept in plain counters and read
/// by observable instruments, so the hot path never touches the metrics pipeline.
/// </summary>
public sealed class IsotunMetrics
{
    public const string MeterName = "Isotun.Server";
    public static readonly IsotunMetrics Instance = new();

    private readonly Meter _meter = new(MeterName);
    private readonly ConcurrentDictionary<string, TenantTraffic> _tenants = new();
    private readonly Counter<long> _handshakes;
    private readonly Histogram<double> _handshakeDuration;
    private readonly Counter<long> _auth;
    private readonly Counter<long> _drops;
    private readonly Counter<long> _closed;
    private readonly UpDownCounter<long> _sessions;

    private IsotunMetrics()
    {
        _handshakes = _meter.CreateCounter<long>("isotun.tls.handshakes", description: "TLS handshakes by result");
        _handshakeDuration = _meter.CreateHistogram<double>("isotun.tls.handshake.duration", unit: "s", description: "TLS handshake duration");
        _auth = _meter.CreateCounter<long>("isotun.auth.attempts", description: "Authentication attempts by tenant and result");
        _drops = _meter.CreateCounter<long>("isotun.tunnel.drops", description: "Packets or frames dropped, by tenant and reason");
        _closed = _meter.CreateCounter<long>("isotun.connections.closed", description: "Connections closed, by reason");
        _sessions = _meter.CreateUpDownCounter<long>("isotun.sessions.active", description: "Sessions with a live tunnel connection");
        _meter.CreateObservableCounter("isotun.tunnel.bytes", ObserveBytes, unit: "By", description: "Tunnel payload bytes by tenant and direction");
        _meter.CreateObservableCounter("isotun.tunnel.packets", ObservePackets, description: "Tunnel packets by tenant and direction");
    }

    public TenantTraffic Tenant(string tenant) => _tenants.GetOrAdd(tenant, t => new TenantTraffic(t));

    public void Handshake(string result, TimeSpan duration)
    {
        _handshakes.Add(1, new KeyValuePair<string, object?>("result", result));
        if (result == "ok") _handshakeDuration.Record(duration.TotalSeconds);
    }

    public void Auth(string tenant, AuthOutcome outcome) =>
        _auth.Add(1, new("tenant", tenant), new("result", outcome.ToLabel()));

    public void Drop(string tenant, DropReason reason, long count = 1) =>
        _drops.Add(count, new("tenant", tenant), new("reason", reason.ToLabel()));

    public void Closed(CloseReason reason) => _closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToLabel()));

    public void SessionUp(string tenant) => _sessions.Add(1, new KeyValuePair<string, object?>("tenant", tenant));

    public void SessionDown(string tenant) => _sessions.Add(-1, new KeyValuePair<string, object?>("tenant", tenant));

    private IEnumerable<Measurement<long>> ObserveBytes()
    {
        foreach (var t in _tenants.Values)
        {
            yield return new(Interlocked.Read(ref t.RxBytes), new("tenant", t.Name), new("direction", "rx"));
            yield return new(Interlocked.Read(ref t.TxBytes), new("tenant", t.Name), new("direction", "tx"));
        }
    }

    private IEnumerable<Measurement<long>> ObservePackets()
    {
        foreach (var t in _tenants.Values)
        {
            yield return new(Interlocked.Read(ref t.RxPackets), new("tenant", t.Name), new("direction", "rx"));
            yield return new(Interlocked.Read(ref t.TxPackets), new("tenant", t.Name), new("direction", "tx"));
        }
    }
}

/// <summary>Traffic counters of one tenant. rx = from clients into the tunnel network, tx = towards clients.</summary>
public sealed class TenantTraffic(string name)
{
    public string Name { get; } = name;
    public long RxBytes;
    public long RxPackets;
    public long TxBytes;
    public long TxPackets;

    public void Rx(int bytes) { Interlocked.Add(ref RxBytes, bytes); Interlocked.Increment(ref RxPackets); }
    public void Tx(int bytes) { Interlocked.Add(ref TxBytes, bytes); Interlocked.Increment(ref TxPackets); }
}
