using Isotun.Transport.Listening;
using Isotun.Metrics;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Isotun.Gateway;

/// <summary>
/// The gateway's instruments (Meter "Isotun.Gateway", exported by the Prometheus endpoint like every Isotun meter).
/// Labels are bounded: outcomes and reasons are fixed strings, route names come from the config. Each instance also
/// keeps plain totals so tests and the CLI can read them without a listener.
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "Isotun.Gateway";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _hello;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _bans;
    private readonly Counter<long> _forwarded;
    private readonly Counter<long> _backendFailures;
    private readonly Counter<long> _handshakes;
    private readonly Histogram<double> _handshakeDuration;
    private readonly Counter<long> _reloads;
    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _closed;
    private readonly Counter<long> _acceptErrors;
    private readonly ConcurrentDictionary<string, long> _totals = new(StringComparer.Ordinal);
    private long _bytesUp;
    private long _bytesDown;
    private long _relayBuffers;

    public GatewayMetrics()
    {
        _hello = _meter.CreateCounter<long>("isotun.gateway.clienthello", description: "Connections by ClientHello outcome: routed, no-sni, not-tls, too-large, timeout, malformed, closed-early, no-route");
        _rejected = _meter.CreateCounter<long>("isotun.gateway.rejected", description: "Connections refused by a limit or an action, by reason");
        _bans = _meter.CreateCounter<long>("isotun.gateway.bans", description: "Source addresses banned after repeated failures");
        _forwarded = _meter.CreateCounter<long>("isotun.gateway.forwarded", description: "Connections forwarded to a backend, by route and mode");
        _backendFailures = _meter.CreateCounter<long>("isotun.gateway.backend.failures", description: "Backend connects that failed or timed out, by route");
        _handshakes = _meter.CreateCounter<long>("isotun.gateway.tls.handshakes", description: "TLS handshakes of terminating routes, by route and result");
        _handshakeDuration = _meter.CreateHistogram<double>("isotun.gateway.tls.handshake.duration", unit: "s", description: "TLS handshake duration of terminating routes");
        _reloads = _meter.CreateCounter<long>("isotun.gateway.reloads", description: "Configuration reloads, by result (ok, refused)");
        _active = _meter.CreateUpDownCounter<long>("isotun.gateway.connections.active", description: "Open client connections, by mode");
        _closed = _meter.CreateCounter<long>("isotun.gateway.relays.closed", description: "Relays the gateway closed itself, by route and reason (idle)");
        _acceptErrors = _meter.CreateCounter<long>("isotun.gateway.accept.errors", description: "Accept failures that made the listener back off: emfile, enfile, enobufs, enomem, other");
        _meter.CreateObservableGauge("isotun.gateway.backend.up", () =>
            (BackendStates?.Invoke() ?? []).Select(b => new Measurement<long>(b.Up ? 1 : 0, new("route", b.Route), new("backend", b.Backend))),
            description: "1 while a backend of a route takes new connections, 0 while it is down (a failed connect or probe)");
        _meter.CreateObservableGauge("isotun.gateway.tls.certificate.not_after", () =>
            (CertificateEnds?.Invoke() ?? []).Select(c => new Measurement<long>(c.NotAfter.ToUnixTimeSeconds(), new KeyValuePair<string, object?>("route", c.Route))),
            unit: "s", description: "When each terminating route's certificate expires, in seconds since the Unix epoch: alert on it minus the time of the scrape");
        _meter.CreateObservableCounter("isotun.gateway.bytes", () => new[]
        {
            new Measurement<long>(Interlocked.Read(ref _bytesUp), new KeyValuePair<string, object?>("direction", "up")),
            new Measurement<long>(Interlocked.Read(ref _bytesDown), new KeyValuePair<string, object?>("direction", "down")),
        }, unit: "By", description: "Bytes relayed: up = client to backend, down = backend to client");
        _meter.CreateObservableGauge("isotun.gateway.relay.buffers", () => Interlocked.Read(ref _relayBuffers),
            description: "Relay buffers held (64 KiB each): a direction holds one while it carries data, none once it idles");
        _meter.CreateObservableGauge("isotun.gateway.sources.tracked", () => Sources?.Invoke().Tracked ?? 0,
            description: "Source addresses (IPv6: /64 prefixes) the admission table tracks now; at its bound, new ones share the overflow bucket");
        _meter.CreateObservableCounter("isotun.gateway.sources.overflow", () => Sources?.Invoke().Overflowed ?? 0,
            description: "Connections admitted through the overflow bucket, the admission table being full");
    }

    /// <summary>Read at a scrape: the admission table's size now, and the connections admitted through its overflow bucket.</summary>
    public Func<(int Tracked, long Overflowed)>? Sources { get; set; }

    /// <summary>This gateway's meter, for an exporter of it alone.</summary>
    public Meter Meter => _meter;

    /// <summary>Read at a scrape: each terminating route's certificate and when it expires.</summary>
    public Func<IEnumerable<(string Route, DateTimeOffset NotAfter)>>? CertificateEnds { get; set; }

    /// <summary>Read at a scrape: every route's backends and whether each is up.</summary>
    public Func<IEnumerable<(string Route, string Backend, bool Up)>>? BackendStates { get; set; }

    /// <summary>Total of one series, e.g. <c>Total("clienthello", "routed")</c>; for tests and status output.</summary>
    public long Total(string instrument, string label) => _totals.GetValueOrDefault(instrument + "/" + label);

    public void Hello(HelloOutcome outcome) => Add(_hello, "clienthello", "outcome", outcome.ToLabel());

    public void Rejected(GatewayRejection reason) => Add(_rejected, "rejected", "reason", reason.ToLabel());

    public void AcceptError(AcceptFailure error) => Add(_acceptErrors, "accept.errors", "error", error.ToLabel());

    public void Ban() => Add(_bans, "bans", "all", "all");

    public void Reload(bool ok) => Add(_reloads, "reloads", "result", (ok ? ReloadResult.Ok : ReloadResult.Refused).ToLabel());

    public void Forwarded(string route, ConnectionMode mode)
    {
        _forwarded.Add(1, new("route", route), new("mode", mode.ToLabel()));
        _totals.AddOrUpdate("forwarded/" + route, 1, static (_, v) => v + 1);
    }

    public void Closed(string route, RelayClose reason)
    {
        _closed.Add(1, new("route", route), new("reason", reason.ToLabel()));
        _totals.AddOrUpdate("relays.closed/" + reason.ToLabel(), 1, (_, v) => v + 1);
    }

    public void BackendFailure(string route) => Add(_backendFailures, "backend.failures", "route", route);

    /// <param name="kind">For a handshake that succeeded: full, or resumed from a session ticket (when known).</param>
    public void Handshake(string route, GatewayHandshake result, TimeSpan duration, HandshakeKind? kind = null)
    {
        if (kind is { } k)
        {
            _handshakes.Add(1, new("route", route), new("result", result.ToLabel()), new("kind", k.ToLabel()));
            _totals.AddOrUpdate("handshakes/" + k.ToLabel(), 1, static (_, v) => v + 1);
        }
        else
        {
            _handshakes.Add(1, new("route", route), new("result", result.ToLabel()));
        }
        _totals.AddOrUpdate("handshakes/" + result.ToLabel(), 1, static (_, v) => v + 1);
        if (result == GatewayHandshake.Ok) _handshakeDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("route", route));
    }

    public void Active(ConnectionMode mode, int delta) => _active.Add(delta, new KeyValuePair<string, object?>("mode", mode.ToLabel()));

    public void BytesUp(long n) => Interlocked.Add(ref _bytesUp, n);

    public void BytesDown(long n) => Interlocked.Add(ref _bytesDown, n);

    /// <summary>Relay buffers held now (each <see cref="Forwarding.Relay.BufferSize"/> bytes).</summary>
    public long RelayBuffersHeld => Interlocked.Read(ref _relayBuffers);

    internal void RelayBuffers(int delta) => Interlocked.Add(ref _relayBuffers, delta);

    private void Add(Counter<long> counter, string instrument, string key, string label)
    {
        if (key == "all") counter.Add(1);
        else counter.Add(1, new KeyValuePair<string, object?>(key, label));
        _totals.AddOrUpdate(instrument + "/" + label, 1, static (_, v) => v + 1);
    }

    public void Dispose() => _meter.Dispose();
}
