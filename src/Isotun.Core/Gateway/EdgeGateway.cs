using System.Net;
using System.Net.Sockets;
using Isotun.Config;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Limits;
using Isotun.Linux;
using Isotun.Logs;
using Isotun.Metrics;
using Microsoft.Extensions.Logging;

namespace Isotun.Gateway;

/// <summary>
/// `isotun gateway`: one public listener; each connection's ClientHello is read (bounded in size and time), its SNI picks
/// a route, and the connection is either passed through untouched or terminated here and forwarded as plaintext with
/// PROXY v2. Admission limits run before a byte is read. The configuration can be reloaded at any time: a new
/// <see cref="GatewayRuntime"/> is swapped in for new connections while established ones keep the route they got.
/// </summary>
public sealed partial class EdgeGateway : IAsyncDisposable
{
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly ConnectionLimiter _limiter;
    private readonly LogThrottle _throttle;
    private readonly Lock _reloadLock = new();
    private GatewayRuntime _runtime;
    private Socket? _listener;
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
    }

    public GatewayMetrics Metrics { get; }

    public GatewayConfig Config => Volatile.Read(ref _runtime).Config;

    public ConnectionLimiter Limiter => _limiter;

    /// <summary>The bound listener address (after <see cref="Start"/>); useful with port 0 in tests.</summary>
    public IPEndPoint? LocalEndpoint => _listener?.LocalEndPoint as IPEndPoint;

    /// <summary>Binds the listener (and the metrics endpoint); <see cref="RunAsync"/> then accepts.</summary>
    public void Start()
    {
        var config = Config;
        _listener = new Socket(config.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(config.Listen);
        _listener.Listen(4096);
        if (config.Admin is { } admin)
        {
            _metricsEndpoint = new MetricsEndpoint(admin);
            GatewayLog.Metrics(_log, admin);
        }

        LogRoutes(Volatile.Read(ref _runtime));
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        if (_listener is null) Start();
        // systemd (Type=notify) counts the service as started from here; a no-op without $NOTIFY_SOCKET.
        SystemdNotify.Ready($"listening on {Config.Listen}");
        var connections = new HashSet<Task>();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _listener!.AcceptAsync(stopping).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    continue; // e.g. ECONNABORTED: the peer gave up in the backlog
                }

                long id = Interlocked.Increment(ref _nextConnection);
                var remote = (socket.RemoteEndPoint as IPEndPoint)!;
                var admission = _limiter.TryAdmit(remote.Address);
                if (admission != Admission.Accepted)
                {
                    Shed(socket, id, remote, admission);
                    continue;
                }

                var task = Task.Run(() => RunConnectionAsync(socket, remote, id, stopping), CancellationToken.None);
                lock (connections)
                {
                    connections.Add(task);
                }

                _ = task.ContinueWith(t => { lock (connections) connections.Remove(t); }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException)
        {
        }

        SystemdNotify.Stopping();
        _listener!.Dispose();
        Task[] pending;
        lock (connections) pending = [.. connections];
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
    }

    /// <summary>Refuses a connection at accept time: reset at once, counted, and rate refusals count towards a ban.</summary>
    private void Shed(Socket socket, long id, IPEndPoint remote, Admission admission)
    {
        string reason = admission switch
        {
            Admission.GlobalCap => "global-cap",
            Admission.IpConcurrency => "ip-concurrency",
            Admission.IpRate => "ip-rate",
            _ => "banned",
        };
        Metrics.Rejected(reason);
        try
        {
            socket.LingerState = new LingerOption(true, 0); // RST: no TIME_WAIT kept for a refused peer
        }
        catch (SocketException)
        {
        }

        socket.Dispose();
        if (admission is Admission.IpRate or Admission.IpConcurrency) Failure(remote);
        if (_throttle.Allow(reason, out long suppressed)) GatewayLog.Refused(_log, id, remote.ToString(), reason, suppressed);
    }

    private async Task RunConnectionAsync(Socket socket, IPEndPoint remote, long id, CancellationToken stopping)
    {
        try
        {
            await HandleAsync(socket, remote, id, stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            // A bug in one connection must not take the gateway down.
            _log.LogError(e, "conn={Conn} failed", id);
        }
        finally
        {
            socket.Dispose();
            _limiter.Release(remote.Address);
        }
    }

    /// <summary>Counts a failure against a source address and logs a ban when it starts one.</summary>
    private void Failure(IPEndPoint remote)
    {
        if (_limiter.RecordFailure(remote.Address))
        {
            Metrics.Ban();
            GatewayLog.Banned(_log, remote.Address.ToString(), (int)Config.Limits.BanTime.TotalSeconds);
        }
    }

    /// <summary>
    /// Re-reads the configuration file. On any error nothing changes and every error is returned (and logged); on success
    /// new connections use the new routes and limits, and established connections are left alone.
    /// </summary>
    public IReadOnlyList<ConfigError> Reload()
    {
        // systemd shows the unit as reloading until READY=1 comes again, whether the new file was taken or refused.
        SystemdNotify.Reloading();
        var path = Config.SourcePath;
        var loaded = GatewayConfigLoader.Load(path);
        var errors = loaded.Ok ? Apply(loaded.Config!) : Refuse(path, loaded.Errors);
        SystemdNotify.Ready(errors.Count == 0 ? $"reloaded {path}" : $"reload of {path} refused ({errors.Count} error(s)); the previous configuration stays live");
        return errors;
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
            if (errors.Count > 0) return Refuse(config.SourcePath, errors);
            var runtime = GatewayRuntime.Build(config, out var buildErrors);
            if (runtime is null) return Refuse(config.SourcePath, buildErrors);

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
            GatewayLog.Route(_log, r.Name, r.Sni ?? "(default)", r.Mode.ToString().ToLowerInvariant(), r.Backend, r.ProxyProtocol ? " with PROXY v2" : "");
        }
    }

    public ValueTask DisposeAsync()
    {
        _listener?.Dispose();
        _metricsEndpoint?.Dispose();
        return ValueTask.CompletedTask;
    }
}
