using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.RegularExpressions;
using Isotun.Metrics;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>
/// Rendering of System.Diagnostics.Metrics instruments as Prometheus text (0.0.4). Each test has its own
/// meter prefix, so the process-wide Isotun meters and other tests never show up in its output.
/// </summary>
public sealed partial class PrometheusExporterTests : IDisposable
{
    private readonly string _prefix = "IsotunTest" + Guid.NewGuid().ToString("N");
    private readonly Meter _meter;
    private readonly PrometheusExporter _exporter;

    public PrometheusExporterTests()
    {
        _exporter = new PrometheusExporter(_prefix);
        _meter = new Meter(_prefix + ".Component");
    }

    public void Dispose()
    {
        _exporter.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public void Counters_end_in_total_and_sum_their_increments_per_label_set()
    {
        var c = _meter.CreateCounter<long>("isotun.tunnel.drops", description: "Packets dropped");
        c.Add(1, new("tenant", "acme"), new("reason", "oversize"));
        c.Add(2, new("reason", "oversize"), new("tenant", "acme"));   // same labels in another order
        c.Add(5, new("tenant", "acme"), new("reason", "spoofed-source"));

        var text = Render();
        Assert.Contains("# HELP isotun_tunnel_drops_total Packets dropped\n", text);
        Assert.Contains("# TYPE isotun_tunnel_drops_total counter\n", text);
        Assert.Contains("isotun_tunnel_drops_total{reason=\"oversize\",tenant=\"acme\"} 3\n", text);
        Assert.Contains("isotun_tunnel_drops_total{reason=\"spoofed-source\",tenant=\"acme\"} 5\n", text);
        Assert.Equal(2, Samples(text, "isotun_tunnel_drops_total").Count);
    }

    [Fact]
    public void Labels_are_sorted_by_name()
    {
        var c = _meter.CreateCounter<int>("isotun.sorted");
        c.Add(1, new("zeta", "1"), new("alpha", "2"), new("mid", "3"), new("a_b", "4"), new("a", "5"));
        Assert.Contains("isotun_sorted_total{a=\"5\",a_b=\"4\",alpha=\"2\",mid=\"3\",zeta=\"1\"} 1\n", Render());
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        var c = _meter.CreateCounter<long>("isotun.escaped");
        c.Add(1, new KeyValuePair<string, object?>("v", "a\\b\"c\nd"));
        var text = Render();
        Assert.Contains("isotun_escaped_total{v=\"a\\\\b\\\"c\\nd\"} 1\n", text);
        AssertValidExposition(text);
    }

    [Fact]
    public void An_unlabelled_counter_has_no_braces()
    {
        _meter.CreateCounter<long>("isotun.plain").Add(7);
        Assert.Contains("\nisotun_plain_total 7\n", "\n" + Render());
    }

    [Fact]
    public void Up_down_counters_are_gauges_that_go_both_ways()
    {
        var g = _meter.CreateUpDownCounter<long>("isotun.sessions.active", description: "Live sessions");
        g.Add(3, new KeyValuePair<string, object?>("tenant", "acme"));
        g.Add(-1, new KeyValuePair<string, object?>("tenant", "acme"));
        g.Add(-2, new KeyValuePair<string, object?>("tenant", "globex"));
        var text = Render();
        Assert.Contains("# TYPE isotun_sessions_active gauge\n", text);
        Assert.Contains("isotun_sessions_active{tenant=\"acme\"} 2\n", text);
        Assert.Contains("isotun_sessions_active{tenant=\"globex\"} -2\n", text);
        Assert.DoesNotContain("isotun_sessions_active_total", text);
    }

    [Fact]
    public void Observable_counters_report_the_current_total_at_each_scrape()
    {
        long rx = 100;
        _meter.CreateObservableCounter("isotun.tunnel.bytes", () => new[]
        {
            new Measurement<long>(rx, new KeyValuePair<string, object?>("direction", "rx"), new("tenant", "acme")),
            new Measurement<long>(rx * 2, new KeyValuePair<string, object?>("direction", "tx"), new("tenant", "acme")),
        }, unit: "By");

        var first = Render();
        Assert.Contains("# TYPE isotun_tunnel_bytes_total counter\n", first);
        Assert.Contains("isotun_tunnel_bytes_total{direction=\"rx\",tenant=\"acme\"} 100\n", first);
        Assert.Contains("isotun_tunnel_bytes_total{direction=\"tx\",tenant=\"acme\"} 200\n", first);

        // A total, not an increment: two scrapes do not add up.
        rx = 150;
        var second = Render();
        Assert.Contains("isotun_tunnel_bytes_total{direction=\"rx\",tenant=\"acme\"} 150\n", second);
        Assert.Contains("isotun_tunnel_bytes_total{direction=\"tx\",tenant=\"acme\"} 300\n", second);
    }

    [Fact]
    public void Observable_gauges_are_gauges_and_series_that_disappear_are_not_repeated()
    {
        var tenants = new List<string> { "acme", "globex" };
        _meter.CreateObservableGauge("isotun.pool.free", () => tenants.Select(t => new Measurement<int>(10, new KeyValuePair<string, object?>("tenant", t))));
        var first = Render();
        Assert.Contains("# TYPE isotun_pool_free gauge\n", first);
        Assert.Equal(2, Samples(first, "isotun_pool_free").Count);

        tenants.Remove("globex");
        var second = Render();
        Assert.Equal(["isotun_pool_free{tenant=\"acme\"} 10"], Samples(second, "isotun_pool_free"));
    }

    [Fact]
    public void Histograms_in_seconds_have_cumulative_buckets_sum_and_count()
    {
        var h = _meter.CreateHistogram<double>("isotun.tls.handshake.duration", unit: "s", description: "TLS handshake duration");
        h.Record(0.003);
        h.Record(0.003);
        h.Record(0.2);
        h.Record(30);

        var text = Render();
        Assert.Contains("# TYPE isotun_tls_handshake_duration_seconds histogram\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_bucket{le=\"0.001\"} 0\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_bucket{le=\"0.005\"} 2\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_bucket{le=\"0.25\"} 3\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_bucket{le=\"10\"} 3\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_bucket{le=\"+Inf\"} 4\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_count 4\n", text);
        var sum = Samples(text, "isotun_tls_handshake_duration_seconds_sum").Single();
        Assert.Equal(30.206, double.Parse(sum.Split(' ')[1], CultureInfo.InvariantCulture), 9);

        // Buckets never decrease.
        var counts = Samples(text, "isotun_tls_handshake_duration_seconds_bucket").Select(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(counts.Order(), counts);
    }

    [Fact]
    public void Histogram_labels_come_before_le()
    {
        var h = _meter.CreateHistogram<double>("isotun.gateway.latency", unit: "s");
        h.Record(0.5, new KeyValuePair<string, object?>("route", "a\"b"));
        var text = Render();
        Assert.Contains("isotun_gateway_latency_seconds_bucket{route=\"a\\\"b\",le=\"0.5\"} 1\n", text);
        Assert.Contains("isotun_gateway_latency_seconds_sum{route=\"a\\\"b\"} 0.5\n", text);
        Assert.Contains("isotun_gateway_latency_seconds_count{route=\"a\\\"b\"} 1\n", text);
    }

    [Fact]
    public void A_name_that_already_ends_in_seconds_is_not_doubled()
    {
        _meter.CreateHistogram<double>("isotun.wait_seconds", unit: "s").Record(1);
        var text = Render();
        Assert.Contains("# TYPE isotun_wait_seconds histogram\n", text);
        Assert.DoesNotContain("seconds_seconds", text);
    }

    [Fact]
    public void Dashes_and_dots_in_names_become_underscores()
    {
        _meter.CreateCounter<long>("isotun.client-to-client.blocked").Add(1);
        Assert.Contains("isotun_client_to_client_blocked_total 1\n", Render());
    }

    [Fact]
    public void Meters_outside_the_prefix_are_not_exported()
    {
        using var other = new Meter("SomethingElse" + Guid.NewGuid().ToString("N"));
        other.CreateCounter<long>("isotun.foreign").Add(1);
        _meter.CreateCounter<long>("isotun.own").Add(1);
        var text = Render();
        Assert.DoesNotContain("isotun_foreign", text);
        Assert.Contains("isotun_own_total 1", text);
    }

    [Fact]
    public void A_whole_scrape_is_valid_exposition_text_in_name_order()
    {
        _meter.CreateCounter<long>("isotun.z.last").Add(1, new KeyValuePair<string, object?>("tenant", "t"));
        _meter.CreateUpDownCounter<int>("isotun.m.middle").Add(-4);
        _meter.CreateHistogram<double>("isotun.a.first", unit: "s").Record(0.01, new KeyValuePair<string, object?>("result", "ok"));
        _meter.CreateObservableCounter("isotun.b.observed", () => 12L);
        _meter.CreateCounter<double>("isotun.c.fractions").Add(0.25);

        var text = Render();
        AssertValidExposition(text);
        var families = text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToList();
        Assert.Equal(["isotun_a_first_seconds", "isotun_b_observed_total", "isotun_c_fractions_total", "isotun_m_middle", "isotun_z_last_total"], families);
        Assert.Contains("isotun_c_fractions_total 0.25\n", text);
    }

    [Fact]
    public void Two_servers_in_one_process_each_export_their_own_counts_only()
    {
        using var first = new IsotunMetrics();
        using var second = new IsotunMetrics();
        using var firstExport = first.Exporter();
        using var secondExport = second.Exporter();
        first.Drop("acme", DropReason.QueueFull);
        first.Drop("acme", DropReason.QueueFull);
        second.Drop("acme", DropReason.QueueFull);
        second.ProxyConnection(ProxyResult.Untrusted);

        var one = firstExport.Render();
        var two = secondExport.Render();
        AssertValidExposition(one);
        AssertValidExposition(two);
        Assert.Contains("isotun_tunnel_drops_total{reason=\"queue-full\",tenant=\"acme\"} 2\n", one);
        Assert.Contains("isotun_tunnel_drops_total{reason=\"queue-full\",tenant=\"acme\"} 1\n", two);
        Assert.DoesNotContain("result=\"untrusted\"", one);
        Assert.Contains("isotun_proxy_connections_total{result=\"untrusted\"} 1\n", two);
    }

    [Fact]
    public void The_server_instruments_render_validly()
    {
        // A server's real instruments, through the exporter of that server alone.
        using var m = new IsotunMetrics();
        using var exporter = m.Exporter();
        m.Handshake(HandshakeResult.Ok, TimeSpan.FromMilliseconds(12));
        m.Handshake(HandshakeResult.Timeout, TimeSpan.FromSeconds(5));
        m.Auth("acme", AuthOutcome.BadPassword);
        m.Drop("acme", DropReason.SpoofedSource);
        m.Closed(CloseReason.BadFrame);
        m.SessionUp("acme");
        m.SessionDown("acme");
        m.Tenant("acme").Rx(100);

        var text = exporter.Render();
        AssertValidExposition(text);
        Assert.Contains("isotun_tls_handshakes_total{result=\"timeout\"} 1\n", text);
        Assert.Contains("isotun_tls_handshake_duration_seconds_count 1\n", text);
        Assert.Contains("isotun_auth_attempts_total{result=\"bad-password\",tenant=\"acme\"} 1\n", text);
        Assert.Contains("isotun_tunnel_drops_total{reason=\"spoofed-source\",tenant=\"acme\"} 1\n", text);
        Assert.Contains("isotun_connections_closed_total{reason=\"bad-frame\"} 1\n", text);
        Assert.Contains("isotun_sessions_active{tenant=\"acme\"} 0\n", text);
        Assert.Matches(@"isotun_tunnel_bytes_total\{direction=""rx"",tenant=""acme""\} \d+\n", text);
    }

    private string Render() => _exporter.Render();

    private static List<string> Samples(string text, string name) =>
        text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal)).ToList();

    /// <summary>
    /// The text format's grammar: HELP and TYPE lines, then samples of that family only, each
    /// <c>name{label="value",...} number</c> with a valid metric name, valid label names and escaped values.
    /// </summary>
    internal static void AssertValidExposition(string text)
    {
        Assert.EndsWith("\n", text);
        string? family = null, type = null;
        var seen = new HashSet<string>();
        foreach (var line in text[..^1].Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                Assert.Matches(HelpLine(), line);
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var m = TypeLine().Match(line);
                Assert.True(m.Success, $"bad TYPE line: {line}");
                family = m.Groups[1].Value;
                type = m.Groups[2].Value;
                Assert.True(seen.Add(family), $"family {family} declared twice");
                continue;
            }
            var s = SampleLine().Match(line);
            Assert.True(s.Success, $"bad sample line: '{line}'");
            var name = s.Groups[1].Value;
            Assert.NotNull(family);
            bool belongs = name == family || (type == "histogram" && (name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
            Assert.True(belongs, $"sample {name} outside its family {family}");
            if (type == "counter") Assert.EndsWith("_total", name);
            Assert.True(double.TryParse(s.Groups[3].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"bad value in '{line}'");
        }
    }

    [GeneratedRegex(@"^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]*$")]
    private static partial Regex HelpLine();

    [GeneratedRegex(@"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\\n]|\\[\\""n])*""(?:,[a-zA-Z_][a-zA-Z0-9_]*=""(?:[^""\\\n]|\\[\\""n])*"")*\})? (\S+)$")]
    private static partial Regex SampleLine();
}
