using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Config;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Protocol.Cookies;
using Isotun.Security;
using Isotun.State;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// The VPN concentrator: a TLS listener speaking OpenConnect's CSTP, one <see cref="TenantRuntime"/> per
/// tenant, a session registry, the state store and the metrics endpoint.
/// </summary>
public sealed class VpnServer : IAsyncDisposable
{
    private readonly ILogger _log;
    private readonly Dictionary<string, TenantRuntime> _tenants = new(StringComparer.Ordinal);
    private Socket? _listener;
    private MetricsEndpoint? _metrics;
    private long _nextConnection;

    /// <param name="networks">Makes each tenant's network: its namespace and TUN by default, memory TUNs in tests.</param>
    public VpnServer(ServerConfig config, ILoggerFactory logs, IStateStore? state = null, TimeProvider? time = null, Func<TenantConfig, ITenantNetwork>? networks = null)
    {
        Config = config;
        _log = logs.CreateLogger("isotun.server");
        var t = time ?? TimeProvider.System;
        State = state ?? new SqliteStateStore(config.StatePath, t);
        Cookies = new CookieSealer(LoadOrCreateCookieKey(config.Cookie.KeyFile), t);
        Sessions = new SessionRegistry(State, t, config.Cookie.Lifetime, _log);

        var (cert, certPath) = LoadServerCertificate(config);
        ServerCertificate = cert;
        ServerLog.ServerCertificate(_log, certPath, CertificatePin.Compute(cert));
        X509Certificate2Collection? clientCas = config.Tls.ClientCa is { } ca ? PemLoader.LoadBundle(ca) : null;
        foreach (var tc in config.Tenants) _tenants[tc.Name] = new TenantRuntime(tc, State, _log, t, networks?.Invoke(tc));
        Authenticator = new Authenticator(_tenants, clientCas);
        TlsOptions = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(cert, additionalCertificates: null, offline: true),
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateRequired = Authenticator.CertificateAuthEnabled,
            // The client CA is checked by the authenticator, so a client without a certificate can still use a password.
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            AllowRenegotiation = false,
        };
    }

    /// <summary>The live config: replaced by <see cref="Reload"/> when a new file validates.</summary>
    public ServerConfig Config { get; private set; }
    public IStateStore State { get; }
    public CookieSealer Cookies { get; }
    public SessionRegistry Sessions { get; }
    public Authenticator Authenticator { get; }
    public SslServerAuthenticationOptions TlsOptions { get; }
    public X509Certificate2 ServerCertificate { get; }
    public IPEndPoint? LocalEndpoint => _listener?.LocalEndPoint as IPEndPoint;

    public async Task RunAsync(CancellationToken stopping)
    {
        foreach (var t in _tenants.Values) t.Start();
        if (Config.Admin.Listen is { } admin)
        {
            _metrics = new MetricsEndpoint(admin);
            ServerLog.Metrics(_log, admin);
        }
        _listener = new Socket(Config.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(Config.Listen);
        _listener.Listen(512);
        ServerLog.Listening(_log, Config.Listen, string.Join(", ", _tenants.Keys));

        var reaper = ReapLoopAsync(stopping);
        var proxy = Config.Proxy is { } pc ? Task.Run(() => new ProxyListener(this, pc, _log).RunAsync(stopping), CancellationToken.None) : Task.CompletedTask;
        var connections = new List<Task>();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                Socket s = await _listener.AcceptAsync(stopping).ConfigureAwait(false);
                long id = Interlocked.Increment(ref _nextConnection);
                var task = Task.Run(() => RunConnectionAsync(s, id, stopping), CancellationToken.None);
                lock (connections)
                {
                    connections.RemoveAll(c => c.IsCompleted);
                    connections.Add(task);
                }
            }
        }
        catch (OperationCanceledException) { }
        _listener.Dispose();
        Task[] pending;
        lock (connections) pending = connections.ToArray();
        try { await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (Exception) { }
        try { await reaper.ConfigureAwait(false); } catch (OperationCanceledException) { }
        try { await proxy.ConfigureAwait(false); } catch (OperationCanceledException) { }
    }

    /// <summary>A fresh connection id, shared by the TLS and the PROXY listener so logs never reuse one.</summary>
    internal long NextConnectionId() => Interlocked.Increment(ref _nextConnection);

    /// <summary>
    /// SIGHUP: reads the config file again. A file with errors is refused with every error listed and the
    /// running config stays. Otherwise per-tenant settings apply at once (users, CAs, limits, routes, DNS,
    /// timers); listener, TLS, state and tenant set or pool changes are reported as needing a restart.
    /// Sessions are never dropped by a reload.
    /// </summary>
    public IReadOnlyList<string> Reload()
    {
        var report = new List<string>();
        var loaded = ServerConfigLoader.Load(Config.SourcePath);
        if (!loaded.Ok)
        {
            report.Add($"reload refused, {loaded.Errors.Count} error(s); the running config stays:");
            report.AddRange(loaded.Errors.Select(e => $"  {e.Path}: {e.Message}"));
            foreach (var line in report) _log.LogError("{Line}", line);
            return report;
        }
        var next = loaded.Config!;
        if (!next.Listen.Equals(Config.Listen) || next.Tls != Config.Tls || next.StatePath != Config.StatePath || next.Cookie != Config.Cookie)
            report.Add("listen, tls, state or cookie changed: restart the server to apply");
        var names = next.Tenants.Select(t => t.Name).ToHashSet();
        foreach (var gone in _tenants.Keys.Where(n => !names.Contains(n)))
            report.Add($"tenant {gone} removed: restart the server to apply");
        foreach (var t in next.Tenants)
        {
            if (!_tenants.TryGetValue(t.Name, out var runtime)) { report.Add($"tenant {t.Name} added: restart the server to apply"); continue; }
            try
            {
                if (runtime.TryApply(t) is { } why) report.Add($"tenant {t.Name}: {why}");
                else report.Add($"tenant {t.Name}: applied");
            }
            catch (Exception e) when (e is IOException or InvalidDataException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                report.Add($"tenant {t.Name}: not applied, {e.Message}");
            }
        }
        Config = Config with { Limits = next.Limits, Admin = Config.Admin };
        foreach (var line in report) _log.LogInformation("reload: {Line}", line);
        return report;
    }

    private async Task RunConnectionAsync(Socket socket, long id, CancellationToken stopping)
    {
        try
        {
            await new ServerConnection(this, id, _log).RunTlsAsync(socket, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested) { }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            IsotunMetrics.Instance.Closed(CloseReason.PeerClosed);
            _log.LogDebug("conn={Conn} closed: {Error}", id, e.Message);
        }
        catch (Exception e)
        {
            // A bug in one connection must not take the server down.
            IsotunMetrics.Instance.Closed(CloseReason.Error);
            _log.LogError(e, "conn={Conn} failed", id);
        }
    }

    private async Task ReapLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            Sessions.Reap();
        }
    }

    private (X509Certificate2, string) LoadServerCertificate(ServerConfig config)
    {
        var tls = config.Tls;
        if (!File.Exists(tls.Certificate) && !File.Exists(tls.Key))
        {
            // First start: make a CA and a server certificate next to where the config expects them.
            var dir = new PkiDirectory(Path.GetDirectoryName(tls.Certificate)!);
            var issued = dir.EnsureServer(tls.ServerName ?? "server", tls.GenerateIps);
            // The PKI names its files after the server; put them where the config says they are.
            if (Path.GetFullPath(issued.CertificatePath) != Path.GetFullPath(tls.Certificate))
                File.Copy(issued.CertificatePath, tls.Certificate);
            if (Path.GetFullPath(issued.KeyPath) != Path.GetFullPath(tls.Key))
                SecretFile.WriteAllBytes(tls.Key, File.ReadAllBytes(issued.KeyPath), overwrite: false);
            _log.LogWarning("no server certificate found: generated {Cert} ({Pin}); pass this pin to openconnect --servercert", issued.CertificatePath, issued.Pin);
        }
        return (PemLoader.LoadCertificateWithKey(tls.Certificate, tls.Key), tls.Certificate);
    }

    private static byte[] LoadOrCreateCookieKey(string path)
    {
        if (File.Exists(path))
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidOperationException($"{path}: cookie key must not be readable by group or others (chmod 600)");
            var key = File.ReadAllBytes(path);
            if (key.Length != CookieSealer.KeyLength) throw new InvalidOperationException($"{path}: cookie key must be {CookieSealer.KeyLength} bytes");
            return key;
        }
        var fresh = RandomNumberGenerator.GetBytes(CookieSealer.KeyLength);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SecretFile.WriteAllBytes(path, fresh, overwrite: false);
        return fresh;
    }

    public async ValueTask DisposeAsync()
    {
        _metrics?.Dispose();
        foreach (var t in _tenants.Values) t.Dispose();
        State.Dispose();
        await Task.CompletedTask;
    }
}
