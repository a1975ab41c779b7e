using Isotun.UnitTests.Gateway;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Isotun.State.Cluster;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A real etcd for the tests that need one: Debian's <c>etcd</c> (package etcd-server), started on 127.0.0.1 with free
/// ports and a temporary data directory, and killed by its PID at the end. Without the binary, <see cref="SkipReason"/>
/// says so and the tests skip. Short heartbeat and election timeouts let etcd take 1 s leases (its minimum TTL is
/// 1.5 election timeouts). With <see cref="Tls"/>, it serves clients over https only and asks each for a certificate
/// (<c>--client-cert-auth</c>); its health is then read from a plain metrics URL.
/// </summary>
public sealed class EtcdServer : IAsyncLifetime
{
    public const string Binary = "/usr/bin/etcd";

    private readonly TempDirectory _dir = new();
    private readonly StringBuilder _log = new();
    private Process? _process;
    private int _client, _peer, _metrics;
    private string _data = "";

    /// <summary>Why the etcd tests cannot run here, or null.</summary>
    public string? SkipReason { get; private set; }

    /// <summary>The certificate and key etcd serves clients with, and the CA their certificates must chain to; null for plain http.</summary>
    public EtcdServerTls? Tls { get; init; }

    /// <summary>The client URL, e.g. <c>http://127.0.0.1:40123</c> (<c>https://</c> with <see cref="Tls"/>).</summary>
    public string Endpoint { get; private set; } = "";

    /// <summary>A new client of this etcd; skips the calling test when etcd is not installed.</summary>
    public IKeyValueStore Connect()
    {
        Skip.If(SkipReason is not null, SkipReason);
        return new EtcdKeyValueStore(Endpoint);
    }

    public async Task InitializeAsync()
    {
        if (!File.Exists(Binary))
        {
            SkipReason = $"{Binary} is missing (Debian package etcd-server; .ci/install-deps installs it): the etcd store was not tested";
            return;
        }
        for (int attempt = 1; ; attempt++)
        {
            (_client, _peer, _metrics) = (LoopbackTcp.FreePort(), LoopbackTcp.FreePort(), LoopbackTcp.FreePort());
            Endpoint = $"{(Tls is null ? "http" : "https")}://127.0.0.1:{_client}";
            _data = _dir.File($"data-{attempt}");
            try
            {
                await StartAsync();
                return;
            }
            catch (InvalidOperationException) when (attempt < 3 && _process is { HasExited: true })
            {
                // A port found free was taken before etcd bound it (other tests bind ports too): again with new ones.
                _process.Dispose();
                _process = null;
                lock (_log) _log.Clear();
            }
        }
    }

    /// <summary>Stops etcd as an operator would (SIGTERM, then its graceful shutdown); its data stays for <see cref="StartAsync"/>.</summary>
    public void Stop()
    {
        if (_process is not { HasExited: false } p) return;
        Isotun.Lab.LabProcess.Signal(p.Id, "TERM");
        if (!p.WaitForExit(10_000)) p.Kill();
        p.Dispose();
        _process = null;
    }

    /// <summary>Starts etcd on the same ports and data (after <see cref="Stop"/>), and waits until it is healthy.</summary>
    public async Task StartAsync()
    {
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
                 {
                     "--name", "isotun-test", "--data-dir", _data,
                     "--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint,
                     "--listen-peer-urls", $"http://127.0.0.1:{_peer}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{_peer}",
                     "--initial-cluster", $"isotun-test=http://127.0.0.1:{_peer}",
                     "--heartbeat-interval", "50", "--election-timeout", "500",
                 })
            psi.ArgumentList.Add(a);
        if (Tls is { } tls)
            foreach (var a in new[]
                     {
                         "--cert-file", tls.Certificate, "--key-file", tls.Key, "--trusted-ca-file", tls.TrustedCa, "--client-cert-auth",
                         "--listen-metrics-urls", $"http://127.0.0.1:{_metrics}",
                     })
                psi.ArgumentList.Add(a);
        // The client URL asks for a client certificate under TLS; the metrics URL answers /health without one.
        var health = Tls is null ? $"{Endpoint}/health" : $"http://127.0.0.1:{_metrics}/health";
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        if (await Eventually.Holds(async () =>
            {
                try
                {
                    return (await http.GetStringAsync(health)).Contains("\"health\":\"true\"", StringComparison.Ordinal);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100), () => _process.HasExited)) return;
        string log;
        lock (_log) log = _log.ToString();
        throw new InvalidOperationException($"etcd did not become healthy on {Endpoint} (exited: {_process.HasExited}). Its output:\n{log}");
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }
        _process?.Dispose();
        _dir.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>What an <see cref="EtcdServer"/> serves its clients with under TLS: PEM files.</summary>
public sealed record EtcdServerTls(string Certificate, string Key, string TrustedCa);

/// <summary>The tests that share one <see cref="EtcdServer"/>.</summary>
[CollectionDefinition(Name)]
public sealed class EtcdCollection : ICollectionFixture<EtcdServer>
{
    public const string Name = "etcd";
}
