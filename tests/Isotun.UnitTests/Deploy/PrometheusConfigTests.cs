using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Isotun.Gateway;
using Isotun.Metrics;
using Isotun.Server;
using Isotun.Server.Configuration;

namespace Isotun.UnitTests.Deploy;

/// <summary>
/// The shipped Prometheus config, alert rules and Grafana dashboard: promtool accepts them, and every series they name
/// is one the server or the gateway really exports (the names are taken from the exporter, not typed again here).
/// </summary>
public sealed partial class PrometheusConfigTests
{
    private static readonly string Config = RepositoryRoot.File("deploy", "prometheus", "prometheus.yml");
    private static readonly string Rules = RepositoryRoot.File("deploy", "prometheus", "isotun-rules.yml");
    private static readonly string Dashboard = RepositoryRoot.File("deploy", "grafana", "isotun-dashboard.json");

    [SkippableFact]
    public void Promtool_accepts_the_scrape_config_and_its_rule_files()
    {
        var (rc, output) = Promtool("check", "config", Config);
        Assert.True(rc == 0, output);
        Assert.Contains("1 rule files found", output);
    }

    [SkippableFact]
    public void Promtool_accepts_the_alert_rules()
    {
        var (rc, output) = Promtool("check", "rules", Rules);
        Assert.True(rc == 0, output);
    }

    [SkippableFact]
    public void Each_alert_fires_on_the_series_it_watches_and_only_there()
    {
        // promtool compares annotations exactly; the cases hold expressions, for: and labels, so they get the rules without them.
        var cases = RepositoryRoot.File("tests", "Isotun.UnitTests", "Deploy", "isotun-rules.test.yml");
        var text = File.ReadAllText(cases);
        foreach (var alert in AlertNames()) Assert.True(text.Contains($"alertname: {alert}\n", StringComparison.Ordinal), $"{alert} has no case in {cases}");

        var dir = Directory.CreateTempSubdirectory("isotun-rules-");
        try
        {
            File.WriteAllLines(Path.Combine(dir.FullName, "isotun-rules.yml"), WithoutAnnotations(File.ReadAllLines(Rules)));
            File.Copy(cases, Path.Combine(dir.FullName, "isotun-rules.test.yml"));
            var (rc, output) = Promtool("test", "rules", Path.Combine(dir.FullName, "isotun-rules.test.yml"));
            Assert.True(rc == 0, output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static IEnumerable<string> AlertNames() =>
        File.ReadLines(Rules).Select(l => l.Trim()).Where(l => l.StartsWith("- alert: ", StringComparison.Ordinal)).Select(l => l["- alert: ".Length..]);

    /// <summary>The rules with each rule's annotations block left out (it is a rule's last key, indented deeper than it).</summary>
    private static IEnumerable<string> WithoutAnnotations(IEnumerable<string> lines)
    {
        int? block = null;
        foreach (var line in lines)
        {
            int indent = line.Length - line.TrimStart().Length;
            if (block is { } b && (line.Trim().Length == 0 || indent > b)) continue;
            block = line.Trim() == "annotations:" ? indent : null;
            if (block is null) yield return line;
        }
    }

    [Fact]
    public void The_scrape_config_scrapes_the_server_and_the_gateway_on_their_default_admin_ports()
    {
        var text = File.ReadAllText(Config);
        Assert.Contains("job_name: isotun-server", text);
        Assert.Contains("job_name: isotun-gateway", text);
        Assert.Contains($"'127.0.0.1:{Isotun.Server.Configuration.ServerConfigLoader.DefaultAdminPort}'", text);
        Assert.Contains($"'127.0.0.1:{Isotun.Gateway.Configuration.GatewayConfigLoader.DefaultAdminPort}'", text);
        Assert.Contains("- isotun-rules.yml", text);
    }

    [Fact]
    public void Every_alert_has_a_for_duration_a_summary_and_a_description()
    {
        var alerts = File.ReadAllText(Rules).Split("- alert: ").Skip(1).ToList();
        Assert.Equal(AlertNames().Count(), alerts.Count);
        foreach (var alert in alerts)
        {
            var name = alert[..alert.IndexOf('\n')];
            Assert.True(ForLine().IsMatch(alert), $"{name}: no for: duration");
            Assert.True(alert.Contains("summary: ", StringComparison.Ordinal), $"{name}: no summary");
            Assert.True(alert.Contains("description: ", StringComparison.Ordinal), $"{name}: no description");
        }
    }

    [Fact]
    public void The_rules_name_only_series_the_server_and_gateway_export()
    {
        var exported = ExportedSeries();
        var used = SeriesNames(File.ReadAllText(Rules));
        Assert.Contains("isotun_tls_handshakes_total", used);
        Assert.Empty(used.Except(exported));
    }

    [Fact]
    public void The_dashboard_parses_and_every_query_names_only_exported_series()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var root = doc.RootElement;
        Assert.InRange(root.GetProperty("schemaVersion").GetInt32(), 36, 41);
        Assert.Contains(root.GetProperty("__inputs").EnumerateArray(), i => i.GetProperty("name").GetString() == "DS_PROMETHEUS");

        var exported = ExportedSeries();
        var exprs = new List<string>();
        var ids = new HashSet<int>();
        foreach (var panel in root.GetProperty("panels").EnumerateArray())
        {
            Assert.True(ids.Add(panel.GetProperty("id").GetInt32()), $"panel id {panel.GetProperty("id")} twice");
            if (!panel.TryGetProperty("targets", out var targets)) continue;
            Assert.Equal("${DS_PROMETHEUS}", panel.GetProperty("datasource").GetProperty("uid").GetString());
            foreach (var t in targets.EnumerateArray())
            {
                var expr = t.GetProperty("expr").GetString()!;
                exprs.Add(expr);
                var names = SeriesNames(expr);
                Assert.True(names.Count > 0, $"'{expr}' names no isotun series");
                Assert.True(names.IsSubsetOf(exported), $"'{expr}' names {string.Join(", ", names.Except(exported))}, which nothing exports");
            }
        }
        Assert.Contains(exprs, e => e.Contains("isotun_tls_handshake_duration_seconds_bucket", StringComparison.Ordinal));
        Assert.Contains(exprs, e => e.Contains("reason=\"queue-full\"", StringComparison.Ordinal));
        Assert.Contains(exprs, e => e.Contains("isotun_tunnel_bytes_total", StringComparison.Ordinal));
    }

    /// <summary>
    /// What a scrape of the Isotun meters declares, through the real exporter: every family of the server (with its
    /// PROXY listener) and the gateway, with a histogram's _bucket, _sum and _count.
    /// </summary>
    internal static HashSet<string> ExportedSeries()
    {
        using var exporter = new PrometheusExporter("Isotun.");
        using var server = new IsotunMetrics();
        using var gateway = new GatewayMetrics();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in exporter.Render().Split('\n'))
        {
            if (!line.StartsWith("# TYPE ", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ');
            names.Add(parts[2]);
            if (parts[3] == "histogram") names.UnionWith([parts[2] + "_bucket", parts[2] + "_sum", parts[2] + "_count"]);
        }
        Assert.Contains("isotun_tls_handshakes_total", names);
        Assert.Contains("isotun_gateway_bytes_total", names);
        return names;
    }

    private static HashSet<string> SeriesNames(string text) => [.. SeriesName().Matches(text).Select(m => m.Value)];

    private static (int ExitCode, string Output) Promtool(params string[] args)
    {
        var tool = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists);
        Skip.If(tool is null, "promtool is missing (Debian package prometheus; .ci/install-deps installs it): the Prometheus files were not checked");
        var psi = new ProcessStartInfo(tool!) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "promtool did not finish in 60 s");
        return (p.ExitCode, stdout + stderr.Result);
    }

    [GeneratedRegex(@"\bisotun_[a-z0-9_]+")]
    private static partial Regex SeriesName();

    [GeneratedRegex(@"\n\s+for: \d+[smh]\n")]
    private static partial Regex ForLine();
}
