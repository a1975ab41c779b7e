using System.Diagnostics.Metrics;

namespace Isotun.Server;

/// <summary>
/// Counters of the server's PROXY v2 listener (Meter "Isotun.Server.Proxy"): connections by result: accepted,
/// untrusted (not from a configured gateway), malformed (bad PROXY block), not-proxy, timeout, closed-early, local
/// (a gateway health check). Plain totals are kept for tests.
/// </summary>
public sealed class ProxyListenerMetrics
{
    public const string MeterName = "Isotun.Server.Proxy";
    public static readonly ProxyListenerMetrics Instance = new();

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _connections;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _totals = new(StringComparer.Ordinal);

    private ProxyListenerMetrics()
    {
        _connections = _meter.CreateCounter<long>("isotun.proxy.connections", description: "Connections on the PROXY v2 listener, by result");
    }

    public void Connection(string result)
    {
        _connections.Add(1, new KeyValuePair<string, object?>("result", result));
        _totals.AddOrUpdate(result, 1, static (_, v) => v + 1);
    }

    public long Total(string result) => _totals.GetValueOrDefault(result);
}
