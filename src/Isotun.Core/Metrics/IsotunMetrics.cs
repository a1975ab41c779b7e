using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Isotun.Transport.Listening;

namespace Isotun.Metrics;

/// <summary>
/// A server's instruments, made by the server and handed to what it runs (tenants, connections, listeners, the admin
/// API), so that two servers in one process (tests) never mix their counts. Labels are bounded: tenant names come
/// from the config (never from the peer), reasons and results from fixed enums (<see cref="ReasonLabels"/>).
/// Per-packet traffic is kept in plain counters and read by observable instruments, so the hot path never touches
/// the metrics pipeline.
/// </summary>
public sealed class IsotunMetrics : IDisposable
{
    public const string MeterName = "Isotun.Server";

    private readonly Meter _meter = new(MeterName);
    private readonly ConcurrentDictionary<string, TenantTraffic> _tenants = new();
    private readonly Counter<long> _handshakes;
    private readonly Histogram<double> _handshakeDuration;
    private readonly Counter<long> _auth;
    private readonly Counter<long> _drops;
    private readonly Counter<long> _closed;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _acceptErrors;
    private readonly Counter<long> _loginBans;
    private readonly Counter<long> _adminRequests;
    private readonly Counter<long> _proxyConnections;
    private readonly UpDownCounter<long> _sessions;
    private readonly UpDownCounter<long> _queues;
    private readonly ConcurrentDictionary<Watch<SessionLimits>, byte> _limitWatches = new();
    private readonly ConcurrentDictionary<Watch<QueueReport>, byte> _queueWatches = new();
    private readonly ConcurrentDictionary<Watch<IReadOnlyList<SiteSample>>, byte> _siteWatches = new();
    private readonly ConcurrentDictionary<Watch<ClusterSample>, byte> _clusterWatches = new();
    private readonly ConcurrentDictionary<Watch<DateTimeOffset>, byte> _certificateWatches = new();

    public IsotunMetrics()
    {
        _handshakes = _meter.CreateCounter<long>("isotun.tls.handshakes", description: "TLS handshakes by result");
        _handshakeDuration = _meter.CreateHistogram<double>("isotun.tls.handshake.duration", unit: "s", description: "TLS handshake duration");
        _auth = _meter.CreateCounter<long>("isotun.auth.attempts", description: "Authentication attempts by tenant and result");
        _drops = _meter.CreateCounter<long>("isotun.tunnel.drops", description: "Packets or frames dropped, by tenant and reason");
        _closed = _meter.CreateCounter<long>("isotun.connections.closed", description: "Connections closed, by reason");
        _refused = _meter.CreateCounter<long>("isotun.listener.refused", description: "Connections refused at accept, before a byte was read, by listener and reason");
        _acceptErrors = _meter.CreateCounter<long>("isotun.listener.accept.errors", description: "Accept failures that made a listener back off (emfile, enfile, enobufs, enomem, other), by listener");
        _adminRequests = _meter.CreateCounter<long>("isotun.admin.requests", description: "Admin API requests by result (ok, unauthorized, bad-request, not-found, too-large, ...)");
        _proxyConnections = _meter.CreateCounter<long>("isotun.proxy.connections", description: "Connections on the PROXY v2 listener, by result");
        _loginBans = _meter.CreateCounter<long>("isotun.login.bans", description: "Temporary login bans after repeated failed logins, by scope (source, user)");
        _sessions = _meter.CreateUpDownCounter<long>("isotun.sessions.active", description: "Sessions with a live tunnel connection");
        _queues = _meter.CreateUpDownCounter<long>("isotun.queues.active", description: "Further connections joined to sessions as queues (the primary is counted in isotun.sessions.active)");
        _meter.CreateObservableGauge("isotun.sessions.limit", ObserveTenantLimits, description: "Sessions a tenant may hold (its max-sessions)");
        _meter.CreateObservableGauge("isotun.sessions.held", ObserveHeld, description: "Sessions counted against the limits, by tenant: with a live connection or waiting for their client to come back (until the cookie expires)");
        _meter.CreateObservableCounter("isotun.tun.reader.busy", () => ObserveReaders(busy: true), unit: "s",
            description: "Time each tenant TUN queue's reader thread spent working (not waiting for packets), by tenant and queue; its rate over isotun.tun.reader.running is the thread's busy ratio");
        _meter.CreateObservableCounter("isotun.tun.reader.running", () => ObserveReaders(busy: false), unit: "s",
            description: "Time each tenant TUN queue's reader thread has run, by tenant and queue");
        _meter.CreateObservableGauge("isotun.tunnel.send.queue.depth", () => ObserveWriters(w => w.Depth),
            description: "Frames waiting in the send queues of a tenant's live connections, now");
        _meter.CreateObservableGauge("isotun.tunnel.send.queue.capacity", () => ObserveWriters(w => w.Capacity),
            description: "Frames the send queues of a tenant's live connections can hold together");
        _meter.CreateObservableGauge("isotun.tunnel.send.queue.bytes", () => ObserveWriters(w => w.HeldBytes), unit: "By",
            description: "Bytes of buffers the frames queued for a tenant's sessions hold, now (each session's are bounded by limits.session-memory-kib)");
        _meter.CreateObservableGauge("isotun.tunnel.send.queue.budget.bytes", () => ObserveWriters(w => w.BudgetBytes), unit: "By",
            description: "The memory budgets of a tenant's sessions, together");
        _meter.CreateObservableGauge("isotun.tunnel.send.queue.highwater", () => ObserveWriters(w => w.HighWater),
            description: "The most frames a live connection of the tenant found waiting at once, since it connected");
        _meter.CreateObservableGauge("isotun.server.sessions.limit", ObserveServerLimit, description: "Sessions the server may hold over all tenants (limits.max-sessions)");
        _meter.CreateObservableCounter("isotun.tunnel.bytes", ObserveBytes, unit: "By", description: "Tunnel payload bytes by tenant and direction");
        _meter.CreateObservableCounter("isotun.tls.crypto", ObserveCrypto, unit: "s",
            description: "CPU time of TLS record work (encrypting what goes to clients, decrypting what comes from them), by tenant and direction: sampled cost per byte times the tenant's bytes; its rate over process_cpu_seconds_total is the crypto CPU share");
        _meter.CreateObservableCounter("process.cpu", () => Environment.CpuUsage.TotalTime.TotalSeconds, unit: "s",
            description: "CPU time of the whole process, user and system");
        _meter.CreateObservableCounter("isotun.tunnel.packets", ObservePackets, description: "Tunnel packets by tenant and direction");
        _meter.CreateObservableCounter("isotun.tunnel.queue.bytes", ObserveQueueBytes, unit: "By", description: "Tunnel payload bytes by tenant, session queue and direction");
        _meter.CreateObservableGauge("isotun.cluster.connected", () => ObserveCluster(c => c.Connected ? 1 : 0),
            description: "1 while this node reaches the cluster's shared store (etcd), 0 while it does not (the data plane goes on; changes wait)");
        _meter.CreateObservableGauge("isotun.cluster.pending.writes", () => ObserveCluster(c => c.PendingWrites),
            description: "Changes (revocations) this node holds until the cluster's store is reachable");
        _meter.CreateObservableCounter("isotun.cluster.dropped.writes", () => ObserveCluster(c => c.DroppedWrites),
            description: "Changes this node dropped because the store cannot take them (a key or value past its limits); each is logged");
        _meter.CreateObservableGauge("isotun.cluster.tenants.stale", () => ObserveCluster(c => c.TenantsStale ? 1 : 0),
            description: "1 while this node runs older tenants than the ones published in the cluster (cluster.share-tenants): it refused them, or has yet to apply them");
        _meter.CreateObservableGauge("isotun.tls.certificate.not_after", ObserveCertificates, unit: "s",
            description: "When the server certificate that new handshakes present expires, in seconds since the Unix epoch: alert on it minus the time of the scrape");
        _meter.CreateObservableCounter("isotun.site.bytes", ObserveSites, unit: "By", description: "Bytes from (rx) and to (tx) a site's subnets, by tenant and site");
    }

    /// <summary>This server's meter: an exporter for this server reads it alone (<see cref="Exporter"/>).</summary>
    public Meter Meter => _meter;

    /// <summary>A Prometheus exporter of this server's instruments only.</summary>
    public PrometheusExporter Exporter() => new(m => m == _meter);

    public void Dispose() => _meter.Dispose();

    public TenantTraffic Tenant(string tenant) => _tenants.GetOrAdd(tenant, t => new TenantTraffic(t));

    /// <summary>A connection on the PROXY v2 listener, by result.</summary>
    public void ProxyConnection(ProxyResult result) => _proxyConnections.Add(1, new KeyValuePair<string, object?>("result", result.ToLabel()));

    /// <param name="kind">For a handshake that succeeded: full, or resumed from a session ticket.</param>
    public void Handshake(HandshakeResult result, TimeSpan duration, HandshakeKind? kind = null)
    {
        if (kind is not { } k)
        {
            _handshakes.Add(1, new KeyValuePair<string, object?>("result", result.ToLabel()));
            if (result == HandshakeResult.Ok) _handshakeDuration.Record(duration.TotalSeconds);
            return;
        }
        _handshakes.Add(1, new("result", result.ToLabel()), new("kind", k.ToLabel()));
        _handshakeDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("kind", k.ToLabel()));
    }

    public void Auth(string tenant, AuthOutcome outcome) =>
        _auth.Add(1, new("tenant", tenant), new("result", outcome.ToLabel()));

    public void Drop(string tenant, DropReason reason, long count = 1) =>
        _drops.Add(count, new("tenant", tenant), new("reason", reason.ToLabel()));

    public void Closed(CloseReason reason) => _closed.Add(1, new KeyValuePair<string, object?>("reason", reason.ToLabel()));

    public void ListenerRefused(ListenerName listener, AdmissionRefusal reason) => _refused.Add(1, new("listener", listener.ToLabel()), new("reason", reason.ToLabel()));

    public void AcceptError(ListenerName listener, AcceptFailure error) => _acceptErrors.Add(1, new("listener", listener.ToLabel()), new("error", error.ToLabel()));

    public void AdminRequest(AdminResult result) => _adminRequests.Add(1, new KeyValuePair<string, object?>("result", result.ToLabel()));

    public void LoginBan(BanScope scope) => _loginBans.Add(1, new KeyValuePair<string, object?>("scope", scope.ToLabel()));

    public void SessionUp(string tenant) => _sessions.Add(1, new KeyValuePair<string, object?>("tenant", tenant));

    public void SessionDown(string tenant) => _sessions.Add(-1, new KeyValuePair<string, object?>("tenant", tenant));

    public void QueueUp(string tenant) => _queues.Add(1, new KeyValuePair<string, object?>("tenant", tenant));

    public void QueueDown(string tenant) => _queues.Add(-1, new KeyValuePair<string, object?>("tenant", tenant));

    /// <summary>
    /// Makes a server's session limits readable as gauges: <paramref name="read"/> is called at scrape time, so a
    /// reload's new limits show at the next scrape. Dispose the result when the server stops. A process runs one
    /// server; where tests run several, tenants are told apart by name and the server-wide limits add up.
    /// </summary>
    public IDisposable WatchSessionLimits(Func<SessionLimits> read) => Watch<SessionLimits>.Add(_limitWatches, read);

    private IEnumerable<Measurement<long>> ObserveTenantLimits()
    {
        foreach (var w in _limitWatches.Keys)
            foreach (var t in w.Read().Tenants) yield return new(t.Max, new KeyValuePair<string, object?>("tenant", t.Tenant));
    }

    private IEnumerable<Measurement<long>> ObserveHeld()
    {
        foreach (var w in _limitWatches.Keys)
            foreach (var t in w.Read().Tenants) yield return new(t.Held, new KeyValuePair<string, object?>("tenant", t.Tenant));
    }

    private IEnumerable<Measurement<long>> ObserveServerLimit()
    {
        if (_limitWatches.IsEmpty) yield break;
        long max = 0;
        foreach (var w in _limitWatches.Keys) max += w.Read().ServerMax;
        yield return new(max);
    }

    /// <summary>
    /// Registers what a running server reports about its queues at each scrape: its TUN readers' busy and running time,
    /// and its tenants' send queues. Read only when a scrape comes, so the data path pays nothing for it.
    /// </summary>
    public IDisposable WatchQueues(Func<QueueReport> read) => Watch<QueueReport>.Add(_queueWatches, read);

    /// <summary>Registers a cluster node's link to its shared store, read at each scrape.</summary>
    public IDisposable WatchCluster(Func<ClusterSample> read) => Watch<ClusterSample>.Add(_clusterWatches, read);

    private IEnumerable<Measurement<long>> ObserveCluster(Func<ClusterSample, long> pick)
    {
        foreach (var w in _clusterWatches.Keys)
        {
            var c = w.Read();
            yield return new(pick(c), new KeyValuePair<string, object?>("node", c.Node));
        }
    }

    /// <summary>Registers a server's certificate, whose end of validity is read at each scrape.</summary>
    public IDisposable WatchCertificate(Func<DateTimeOffset> notAfter) => Watch<DateTimeOffset>.Add(_certificateWatches, notAfter);

    private IEnumerable<Measurement<long>> ObserveCertificates()
    {
        foreach (var w in _certificateWatches.Keys) yield return new(w.Read().ToUnixTimeSeconds());
    }

    /// <summary>Registers a server's sites, read at each scrape for their byte counts.</summary>
    public IDisposable WatchSites(Func<IReadOnlyList<SiteSample>> read) => Watch<IReadOnlyList<SiteSample>>.Add(_siteWatches, read);

    private IEnumerable<Measurement<long>> ObserveSites()
    {
        foreach (var w in _siteWatches.Keys)
            foreach (var s in w.Read())
            {
                yield return new(s.RxBytes, new("tenant", s.Tenant), new("site", s.Site), new("direction", "rx"));
                yield return new(s.TxBytes, new("tenant", s.Tenant), new("site", s.Site), new("direction", "tx"));
            }
    }

    private IEnumerable<Measurement<double>> ObserveReaders(bool busy)
    {
        foreach (var w in _queueWatches.Keys)
            foreach (var r in w.Read().Readers)
                yield return new(busy ? r.BusySeconds : r.RunningSeconds, new("tenant", r.Tenant), new("queue", r.Queue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    private IEnumerable<Measurement<long>> ObserveWriters(Func<WriterSample, long> pick)
    {
        foreach (var w in _queueWatches.Keys)
            foreach (var s in w.Read().Writers) yield return new(pick(s), new KeyValuePair<string, object?>("tenant", s.Tenant));
    }

    /// <summary>A reader registered in <paramref name="set"/> until disposed; read at scrape time only.</summary>
    private sealed class Watch<T>(ConcurrentDictionary<Watch<T>, byte> set, Func<T> read) : IDisposable
    {
        public static Watch<T> Add(ConcurrentDictionary<Watch<T>, byte> set, Func<T> read)
        {
            var watch = new Watch<T>(set, read);
            set[watch] = 0;
            return watch;
        }

        public T Read() => read();

        public void Dispose() => set.TryRemove(this, out _);
    }

    private IEnumerable<Measurement<long>> ObserveBytes() => Observe(TenantTraffic.RxBytes, TenantTraffic.TxBytes, byQueue: false);

    private IEnumerable<Measurement<long>> ObservePackets() => Observe(TenantTraffic.RxPackets, TenantTraffic.TxPackets, byQueue: false);

    private IEnumerable<Measurement<long>> ObserveQueueBytes() => Observe(TenantTraffic.RxBytes, TenantTraffic.TxBytes, byQueue: true);

    private IEnumerable<Measurement<double>> ObserveCrypto()
    {
        foreach (var t in _tenants.Values)
        {
            yield return new(t.Crypto.Estimate(encrypt: true, t.Total(TenantTraffic.TxBytes)), new("tenant", t.Name), new("direction", "encrypt"));
            yield return new(t.Crypto.Estimate(encrypt: false, t.Total(TenantTraffic.RxBytes)), new("tenant", t.Name), new("direction", "decrypt"));
        }
    }

    /// <summary>Per tenant and direction; by queue, only the queues that carried traffic (queue 0 always).</summary>
    private IEnumerable<Measurement<long>> Observe(int rx, int tx, bool byQueue)
    {
        foreach (var t in _tenants.Values)
        {
            if (!byQueue)
            {
                yield return new(t.Total(rx), new("tenant", t.Name), new("direction", "rx"));
                yield return new(t.Total(tx), new("tenant", t.Name), new("direction", "tx"));
                continue;
            }
            for (int q = 0; q < TenantTraffic.Queues; q++)
            {
                long r = t.Read(q, rx), s = t.Read(q, tx);
                if (q > 0 && r == 0 && s == 0) continue;
                string queue = QueueLabels[q];
                yield return new(r, new("tenant", t.Name), new("queue", queue), new("direction", "rx"));
                yield return new(s, new("tenant", t.Name), new("queue", queue), new("direction", "tx"));
            }
        }
    }

    private static readonly string[] QueueLabels = Enumerable.Range(0, TenantTraffic.Queues).Select(q => q.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}

/// <summary>
/// Traffic counters of one tenant, per session queue (queue 0 carries every stock client's traffic). rx = from
/// clients into the tunnel network, tx = towards clients. Each queue's counters sit on their own cache lines,
/// as different queues are counted from different threads.
/// </summary>
public sealed class TenantTraffic(string name)
{
    public const int Queues = Protocol.Cstp.IsotunExtensions.MaxQueues;
    public const int RxBytes = 0, RxPackets = 1, TxBytes = 2, TxPackets = 3;
    private const int Stride = 16; // 128 bytes per queue

    private readonly long[] _counters = new long[Queues * Stride];

    public string Name { get; } = name;

    /// <summary>The tenant's TLS record work, sampled by its connections.</summary>
    public CryptoMeter Crypto { get; } = new();

    public void Rx(int bytes, int queue = 0) => Add(queue, RxBytes, bytes);
    public void Tx(int bytes, int queue = 0) => Add(queue, TxBytes, bytes);

    private void Add(int queue, int counter, int bytes)
    {
        int at = (queue & (Queues - 1)) * Stride + counter;
        Interlocked.Add(ref _counters[at], bytes);
        Interlocked.Increment(ref _counters[at + 1]);
    }

    public long Read(int queue, int counter) => Interlocked.Read(ref _counters[queue * Stride + counter]);

    public long Total(int counter)
    {
        long sum = 0;
        for (int q = 0; q < Queues; q++) sum += Read(q, counter);
        return sum;
    }
}

/// <summary>One TUN queue's reader thread: how long it has worked and how long it has run.</summary>
public sealed record ReaderSample(string Tenant, int Queue, double BusySeconds, double RunningSeconds);

/// <summary>A tenant's live connections' send queues together: frames waiting now, room, and the highest backlog seen.</summary>
public sealed record WriterSample(string Tenant, long Depth, long Capacity, long HighWater, long HeldBytes, long BudgetBytes);

/// <summary>What <see cref="IsotunMetrics.WatchQueues"/> reads at a scrape.</summary>
/// <summary>A cluster node's link to its shared store.</summary>
public sealed record ClusterSample(string Node, bool Connected, int PendingWrites, bool TenantsStale = false, long DroppedWrites = 0);

/// <summary>A site's byte counts: from its subnets (rx) and to them (tx).</summary>
public sealed record SiteSample(string Tenant, string Site, long RxBytes, long TxBytes);

public sealed record QueueReport(IReadOnlyList<ReaderSample> Readers, IReadOnlyList<WriterSample> Writers);
