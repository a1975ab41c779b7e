using System.Net;
using System.Net.Sockets;
using Isotun.Config;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Limits;
using Isotun.Linux;
using Isotun.Logs;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Transport.Listening;
using Microsoft.Extensions.Logging;

namespace Isotun.Gateway;

/// <summary>
/// `isotun gateway`: one public listener; each connection's ClientHello is read (bounded in size and time), its SNI picks
/// a route, and the connection is either passed through untouched or terminated here and forwarded as plaintext with
/// PROXY v2. Admission limits run before a byte is read. The configuration can be reloaded at any time: a new
/// <see cref="GatewayRuntime"/> is swapped in for new connections while established ones keep the route they got.
/// </summary>
public sealed partial class EdgeGateway : IAsyncDisposable, IListenerEvents
{
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly ConnectionLimiter _limiter;
    private readonly LogThrottle _throttle;
    private readonly Lock _reloadLock = new();
    private readonly ServiceNotifier _notify = new(); // READY, RELOADING, STOPPING for systemd
    private GatewayRuntime _runtime;
    private Socket[]? _listeners;
    private MetricsEndpoint? _metricsEndpoint;
    private long _nextConnection;

    public EdgeGateway(GatewayConfig config, ILoggerFactory logs, TimeProvider? time = null, GatewayMetrics? metrics = null)
    {
        _log = logs.CreateLogger("isotun.gateway");
        _time = time ?? TimeProvider.System;
        Metrics = metrics ?? new GatewayMetrics();
        _runtime = GatewayRuntime.Build(config, out var errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors.Select(e => e.ToString())));
        _limiter = new ConnectionLimiter(config.Limits, _time);
        _throttle = new LogThrottle(time: _time);
        Metrics.Sources = () => (_limiter.TrackedAddresses, _limiter.Overflowed);
        Metrics.CertificateEnds = () => Volatile.Read(ref _runtime).Routes
            .Where(r => r.Tls?.ServerCertificateContext is not null)
            .Select(r => (r.Name, new DateTimeOffset(r.Tls!.ServerCertificateContext!.TargetCertificate.NotAfter.ToUniversalTime())));
        Metrics.BackendStates = () => Volatile.Read(ref _runtime).Routes
            .SelectMany(r => r.Backends.Backends.Select((b, i) => (r.Name, b.ToString(), r.Backends.IsUp(i))));
    }

    public GatewayMetrics Metrics { get; }

    public GatewayConfig Config => Volatile.Read(ref _runtime).Config;

    public ConnectionLimiter Limiter => _limiter;

    /// <summary>The bound listener address (after <see cref="Start"/>); useful with port 0 in tests.</summary>
    public IPEndPoint? LocalEndpoint => _listeners?[0].LocalEndPoint as IPEndPoint;

    /// <summary>Binds the listener (and the metrics endpoint); <see cref="RunAsync"/> then accepts.</summary>
    public void Start()
    {
        var config = Config;
        _listeners = ListeningSockets.Open("gateway", config.Listen, 4096);
        if (config.Admin is { } admin)
        {
            try
            {
                _metricsEndpoint = new MetricsEndpoint(admin, config.AdminHosts);
            }
            catch (IOException)
            {
                foreach (var s in _listeners) s.Dispose();
                _listeners = null;
                throw;
            }
            GatewayLog.Metrics(_log, admin);
        }

        LogRoutes(Volatile.Read(ref _runtime));
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        if (_listeners is null) Start();
        // systemd (Type=notify) counts the service as started from here, and as stopping once a stop begins; no-ops
        // without $NOTIFY_SOCKET.
        _notify.Ready($"listening on {Config.Listen}");
        using var stoppingNotice = stopping.Register(static n => ((ServiceNotifier)n!).Stopping(), _notify);
        var listener = new ConnectionListener(_listeners!, _limiter, this, () => Interlocked.Increment(ref _nextConnection));
        var probes = ProbeBackendsAsync(stopping);
        // A connection starts on the accepting thread (one listening socket per core): it reads its ClientHello first,
        // and a terminating route leaves that thread before its handshake.
        await listener.RunAsync((c, ct) => HandleAsync(c.Socket, c.Remote, c.Id, ct), static () => TimeSpan.FromSeconds(5), stopping, startOnAcceptThread: true).ConfigureAwait(false);
        await probes.ConfigureAwait(false);
    }

    /// <summary>Every <see cref="Routing.BackendPool.ProbeEvery"/>: the backends of routes with several are probed, and marked up or down.</summary>
    private async Task ProbeBackendsAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Routing.BackendPool.ProbeEvery, _time, stopping).ConfigureAwait(false);
                foreach (var route in Volatile.Read(ref _runtime).Routes.Where(r => r.Backends.Backends.Count > 1))
                    foreach (var (backend, up) in await route.Backends.ProbeAsync(stopping).ConfigureAwait(false))
                    {
                        if (up) GatewayLog.BackendUp(_log, route.Name, backend);
                        else GatewayLog.BackendDown(_log, route.Name, backend, "a probe failed");
                    }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever a probe meets, probing goes on: a backend marked down is marked up again only by a probe.
                _log.LogError(e, "backend probes failed; they go on");
            }
        }
    }

    /// <summary>A connection refused at accept time (reset at once by the listener): counted, and rate refusals count towards a ban.</summary>
    void IListenerEvents.Refused(IPEndPoint remote, AdmissionRefusal reason)
    {
        var rejection = reason switch
        {
            AdmissionRefusal.IpConcurrency => GatewayRejection.IpConcurrency,
            AdmissionRefusal.IpRate => GatewayRejection.IpRate,
            AdmissionRefusal.Banned => GatewayRejection.Banned,
            _ => GatewayRejection.GlobalCap,
        };
        Metrics.Rejected(rejection);
        if (rejection is GatewayRejection.IpRate or GatewayRejection.IpConcurrency) Failure(remote);
        if (_throttle.Allow(rejection.ToLabel(), out long suppressed)) GatewayLog.RefusedAtAccept(_log, remote.ToString(), rejection.ToLabel(), suppressed);
    }

    void IListenerEvents.AcceptFailed(AcceptFailure error, TimeSpan backoff)
    {
        Metrics.AcceptError(error);
        if (_throttle.Allow("accept-" + error.ToLabel(), out long suppressed)) GatewayLog.AcceptFailed(_log, error.ToLabel(), (int)backoff.TotalMilliseconds, suppressed);
    }

    // A bug in one connection must not take the gateway down, and one a peer can trigger at will must not fill the log.
    void IListenerEvents.HandlerFailed(long id, Exception error)
    {
        if (_throttle.Allow("handler-failed", out long suppressed)) _log.LogError(error, "conn={Conn} failed ({Suppressed} more like it not logged)", id, suppressed);
    }

    /// <summary>Counts a failure against a source address and logs a ban when it starts one.</summary>
    private void Failure(IPEndPoint remote)
    {
        if (_limiter.RecordFailure(remote.Address))
        {
            Metrics.Ban();
            // Throttled as the refusals are: a peer rotating its addresses makes a ban per few refusals.
            if (_throttle.Allow("ban", out long suppressed))
                GatewayLog.Banned(_log, remote.Address.ToString(), (int)Config.Limits.BanTime.TotalSeconds, suppressed);
        }
    }

    /// <summary>
    /// Re-reads the configuration file. On any error nothing changes and every error is returned (and logged); on success
    /// new connections use the new routes and limits, and established connections are left alone.
    /// </summary>
    public IReadOnlyList<ConfigError> Reload()
    {
        // One reload at a time, from reading the file to applying it: of two (two quick SIGHUPs around an edit), the
        // one that read the older file must not be applied last. (The lock is taken again inside Apply.)
        lock (_reloadLock)
        {
            // systemd shows the unit as reloading until READY=1 comes again, whether the new file was taken or refused.
            _notify.Reloading();
            var path = Config.SourcePath;
            var loaded = GatewayConfigLoader.Load(path);
            var errors = loaded.Ok ? Apply(loaded.Config!) : Refuse(path, loaded.Errors);
            _notify.Ready(errors.Count == 0 ? $"reloaded {path}" : $"reload of {path} refused ({errors.Count} error(s)); the previous configuration stays live");
            return errors;
        }
    }

    /// <summary>Applies an already loaded configuration (what <see cref="Reload"/> does after loading).</summary>
    public IReadOnlyList<ConfigError> Apply(GatewayConfig config)
    {
        lock (_reloadLock)
        {
            var current = Volatile.Read(ref _runtime).Config;
            var errors = new List<ConfigError>();
            if (!config.Listen.Equals(current.Listen))
                errors.Add(new ConfigError("listen", $"cannot change from {current.Listen} without a restart"));
            if (!Equals(config.Admin, current.Admin))
                errors.Add(new ConfigError("admin.listen", "cannot change without a restart"));
            if (!config.AdminHosts.SequenceEqual(current.AdminHosts))
                errors.Add(new ConfigError("admin.hosts", "cannot change without a restart"));
            if (errors.Count > 0) return Refuse(config.SourcePath, errors);
            var runtime = GatewayRuntime.Build(config, out var buildErrors);
            if (runtime is null) return Refuse(config.SourcePath, buildErrors);

            // A backend a route had before keeps its health: a node found down stays down until a probe or a connect
            // finds it up, instead of being ranked first again by every client for a probe's time after each reload.
            var before = Volatile.Read(ref _runtime).Routes.ToDictionary(r => r.Name, r => r.Backends, StringComparer.Ordinal);
            foreach (var route in runtime.Routes)
                if (before.TryGetValue(route.Name, out var old)) route.Backends.KeepHealthOf(old);
            Volatile.Write(ref _runtime, runtime);
            _limiter.Update(config.Limits);
            Metrics.Reload(true);
            GatewayLog.Reloaded(_log, config.SourcePath, config.Routes.Count + (config.Default is null ? 0 : 1));
            LogRoutes(runtime);
            return [];
        }
    }

    private IReadOnlyList<ConfigError> Refuse(string path, IReadOnlyList<ConfigError> errors)
    {
        Metrics.Reload(false);
        GatewayLog.ReloadRefused(_log, path, errors.Count);
        foreach (var e in errors) GatewayLog.ReloadError(_log, e.Path, e.Message);
        return errors;
    }

    private void LogRoutes(GatewayRuntime runtime)
    {
        var c = runtime.Config;
        GatewayLog.Listening(_log, c.Listen, c.Routes.Count, c.Default is null ? "" : " + default");
        foreach (var r in c.Routes.Append(c.Default))
        {
            if (r is null) continue;
            GatewayLog.Route(_log, r.Name, r.Sni ?? "(default)", r.Mode.ToString().ToLowerInvariant(), string.Join(", ", r.Backends), r.ProxyProtocol ? " with PROXY v2" : "");
        }
        foreach (var r in runtime.Routes)
        {
            // Served as it is (clients that pin it, as openconnect's --servercert does, take it whatever its names and
            // dates), but the operator hears of it at each start and reload.
            if (r.Tls?.ServerCertificateContext?.TargetCertificate is not { } cert || r.Route.Terminate is not { } t) continue;
            if (CertificateValidity.DateProblem(cert, _time.GetUtcNow()) is { } problem) GatewayLog.CertificateProblem(_log, r.Name, t.Certificate, problem);
            if (r.Route.Sni is { } sni && !CertificateValidity.Covers(cert, sni))
                GatewayLog.CertificateProblem(_log, r.Name, t.Certificate, $"is not for {sni} (it names {CertificateValidity.Names(cert)}): clients that check the name refuse it");
        }
        if (c.TicketKeyFile is { } keyFile)
        {
            if (runtime.TicketKeyProblem is { } problem) GatewayLog.TicketKeyNotUsed(_log, keyFile, problem);
            else GatewayLog.TicketKey(_log, keyFile);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _listeners ?? []) s.Dispose();
        if (_metricsEndpoint is { } metrics) await metrics.DisposeAsync().ConfigureAwait(false);
    }
}
