using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Deploy;

/// <summary>
/// The real Prometheus scrapes the lab's server, as an operator's would: it is started in the server's namespace with
/// the shipped alert rules, and its HTTP API must return the handshakes and the traffic of the lab's tunnel, and every
/// rule must evaluate without error against the series the server really exports.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class PrometheusTests(LabFixture lab)
{
    private const string Prometheus = "/usr/bin/prometheus";
    private LabLayout L => lab.Layout;

    [SkippableFact]
    public async Task Prometheus_scrapes_the_servers_handshakes_and_traffic_and_evaluates_the_shipped_rules()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        Skip.IfNot(File.Exists(Prometheus), $"{Prometheus} is missing (Debian package prometheus; .ci/install-deps installs it)");
        Assert.Equal(L.ServiceText, lab.Lab!.FetchServiceText()); // traffic through the tunnel, so the byte counters move

        var dir = Path.Combine(Path.GetTempPath(), $"isotun-prometheus-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        var rules = Path.Combine(TestEnvironment.RepoRoot, "deploy", "prometheus", "isotun-rules.yml");
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files:
              - {rules}
            scrape_configs:
              - job_name: isotun-server
                static_configs:
                  - targets: ['127.0.0.1:{LabLayout.AdminPort}']
            """);
        int port = FreePort();
        var log = new StringBuilder();
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", L.ServerNs, Prometheus, $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(dir, "data")}",
                     $"--web.listen-address=127.0.0.1:{port}" })
            psi.ArgumentList.Add(a);
        // `ip netns exec` enters the namespace and execs Prometheus, so this PID is Prometheus itself.
        using var prometheus = Process.Start(psi)!;
        prometheus.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        prometheus.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        using var http = new HttpClient(InServerNamespace()) { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            await Until(async () => (await TryGet(http, "/-/ready")) is not null, prometheus, log, "Prometheus to answer");

            var handshakes = await UntilValues(http, "isotun_tls_handshakes_total", prometheus, log);
            Assert.Contains(handshakes, s => s.Labels.GetValueOrDefault("result") == "ok" && s.Value > 0);
            var bytes = await UntilValues(http, $"isotun_tunnel_bytes_total{{tenant=\"{LabLayout.Tenant}\"}}", prometheus, log);
            Assert.Contains(bytes, s => s.Labels.GetValueOrDefault("direction") == "rx" && s.Value > 0);
            Assert.Contains(bytes, s => s.Labels.GetValueOrDefault("direction") == "tx" && s.Value > 0);
            var up = await UntilValues(http, "up{job=\"isotun-server\"}", prometheus, log);
            Assert.Equal(1, up.Single().Value);
            var limit = await UntilValues(http, $"isotun_sessions_limit{{tenant=\"{LabLayout.Tenant}\"}}", prometheus, log);
            Assert.True(limit.Single().Value > 0, "the tenant's max-sessions is not exported");

            // Every shipped rule was loaded and evaluated against the real series without error.
            List<(string Name, string Health, string Error)> evaluated = [];
            await Until(async () =>
            {
                evaluated = Rules(await TryGet(http, "/api/v1/rules"));
                return evaluated.Count > 0 && evaluated.All(r => r.Health != "unknown");
            }, prometheus, log, "every rule to be evaluated");
            Assert.True(evaluated.All(r => r.Health == "ok"), string.Join("\n", evaluated.Where(r => r.Health != "ok").Select(r => $"{r.Name}: {r.Health} {r.Error}")));
            Assert.Equal(File.ReadAllText(rules).Split("- alert: ").Length - 1, evaluated.Count);
        }
        finally
        {
            try { prometheus.Kill(); } catch (InvalidOperationException) { } // already gone
            prometheus.WaitForExit(10_000);
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed record Sample(Dictionary<string, string> Labels, double Value);

    /// <summary>HTTP to 127.0.0.1 inside the server's namespace: each socket is made there, so it connects there.</summary>
    private SocketsHttpHandler InServerNamespace() => new()
    {
        ConnectCallback = async (ctx, ct) =>
        {
            var socket = NetworkNamespace.Run(L.ServerNs, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, ctx.DnsEndPoint.Port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>A port free on the server namespace's loopback (the kernel's pick, let go just before Prometheus takes it).</summary>
    private int FreePort() => NetworkNamespace.Run(L.ServerNs, () =>
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    });

    private static async Task<string?> TryGet(HttpClient http, string path)
    {
        try
        {
            using var response = await http.GetAsync(path);
            return response.IsSuccessStatusCode ? await response.Content.ReadAsStringAsync() : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>The samples of an instant query, once Prometheus has scraped some.</summary>
    private static async Task<List<Sample>> UntilValues(HttpClient http, string query, Process prometheus, StringBuilder log)
    {
        List<Sample> samples = [];
        await Until(async () =>
        {
            samples = Samples(await TryGet(http, "/api/v1/query?query=" + Uri.EscapeDataString(query)));
            return samples.Count > 0;
        }, prometheus, log, $"a result for {query}");
        return samples;
    }

    private static List<Sample> Samples(string? json)
    {
        if (json is null) return [];
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.GetProperty("status").GetString() != "success") return [];
        return [.. doc.RootElement.GetProperty("data").GetProperty("result").EnumerateArray().Select(r => new Sample(
            r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? ""),
            double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)))];
    }

    private static List<(string Name, string Health, string Error)> Rules(string? json)
    {
        if (json is null) return [];
        using var doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("health").GetString()!,
                r.TryGetProperty("lastError", out var e) ? e.GetString() ?? "" : ""))];
    }

    private static async Task Until(Func<Task<bool>> done, Process prometheus, StringBuilder log, string what)
    {
        if (await Eventually.Holds(done, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500), () => prometheus.HasExited)) return;
        string text;
        lock (log) text = log.ToString();
        Assert.Fail($"timed out waiting for {what}{(prometheus.HasExited ? $" (Prometheus exited with {prometheus.ExitCode})" : "")}; its log:\n{text}");
    }
}
