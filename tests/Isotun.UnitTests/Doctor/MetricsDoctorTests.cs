using Isotun.Doctor;

namespace Isotun.UnitTests.Doctor;

/// <summary>`isotun doctor --metrics`: one scrape of a server's endpoint, read per tenant.</summary>
public class MetricsDoctorTests
{
    private const string Scrape = """
        # HELP isotun_tunnel_bytes_total Bytes through tenant TUNs
        # TYPE isotun_tunnel_bytes_total counter
        isotun_tunnel_bytes_total{tenant="acme",direction="rx"} 1400000000
        isotun_tunnel_packets_total{tenant="acme",direction="rx"} 1000000
        isotun_tunnel_bytes_total{tenant="acme",direction="tx"} 6.4e9
        isotun_tunnel_packets_total{tenant="acme",direction="tx"} 100000
        isotun_tunnel_bytes_total{tenant="globex",direction="rx"} 500
        isotun_tunnel_packets_total{tenant="globex",direction="rx"} 5
        isotun_tunnel_drops_total{tenant="acme",reason="queue-full"} 42
        isotun_tunnel_drops_total{tenant="acme",reason="spoofed-source"} 3
        isotun_tunnel_drops_total{tenant="acme",reason="tun-write-failed"} 0
        isotun_tls_handshakes_total{result="ok"} 10
        isotun_tls_handshakes_total{result="timeout"} 400
        isotun_tls_handshakes_total{result="failed"} 100
        process_cpu_seconds_total 12.5
        """;

    [Fact]
    public void Samples_keep_their_names_labels_and_values_and_junk_lines_are_skipped()
    {
        var samples = MetricsDoctor.Parse(Scrape + "\nnot a sample\nbroken{tenant=\"x\" 1\n{} 2\n");
        Assert.Equal(13, samples.Count);
        var first = samples[0];
        Assert.Equal(("isotun_tunnel_bytes_total", "acme", "rx", 1.4e9), (first.Name, first.Labels["tenant"], first.Labels["direction"], first.Value));
        Assert.Equal(6.4e9, samples[2].Value);
        Assert.Equal(("process_cpu_seconds_total", 0, 12.5), (samples[^1].Name, samples[^1].Labels.Count, samples[^1].Value));
    }

    [Fact]
    public void Each_tenant_gets_its_packet_sizes_its_drops_with_their_meaning_and_abuse_is_flagged()
    {
        var findings = MetricsDoctor.Examine(Scrape);
        Assert.All(findings, f => Assert.Equal("server", f.Check));
        var found = findings.Select(f => (f.Level, f.Found)).ToList();
        Assert.Equal(
        [
            (FindingLevel.Info, "acme from clients: 1.3 GiB in 1000000 packets, 1400 bytes each: packet by packet (stock clients, or no GSO): each costs a TLS record and a system call"),
            (FindingLevel.Ok, "acme to clients: 6.0 GiB in 100000 packets, 64000 bytes each: super-packets are flowing"),
            (FindingLevel.Warn, "acme: 42 packets dropped (queue-full): a connection's send queue was full"),
            (FindingLevel.Info, "acme: 3 packets dropped (spoofed-source): misbehaving peers, not a capacity problem"),
            (FindingLevel.Warn, "500 TLS handshakes failed or timed out, against 10 that succeeded"),
        ], found);
        // globex moved too few packets to say anything; a zero counter is no drop.
        Assert.DoesNotContain(findings, f => f.Found.Contains("globex") || f.Found.Contains("tun-write-failed"));
        Assert.All(findings.Where(f => f.Level == FindingLevel.Warn), f => Assert.False(string.IsNullOrEmpty(f.Advice)));
    }

    [Theory]
    [InlineData(40, 20, FindingLevel.Warn, "TLS record work took 67% of the server's 90 s of CPU")]
    [InlineData(5, 5, FindingLevel.Info, "TLS record work took 11% of the server's 90 s of CPU")]
    public void The_crypto_share_is_the_tls_seconds_over_the_process_cpu_and_warns_when_tls_is_most_of_it(double encrypt, double decrypt, FindingLevel level, string found)
    {
        var scrape = $"isotun_tunnel_bytes_total{{tenant=\"acme\",direction=\"rx\"}} 1\nisotun_tls_crypto_seconds_total{{direction=\"encrypt\",tenant=\"acme\"}} {encrypt}\n"
            + $"isotun_tls_crypto_seconds_total{{direction=\"decrypt\",tenant=\"acme\"}} {decrypt}\nprocess_cpu_seconds_total 90\n";
        var finding = Assert.Single(MetricsDoctor.Examine(scrape), f => f.Found.StartsWith("TLS record work", StringComparison.Ordinal));
        Assert.Equal((level, found), (finding.Level, finding.Found));
        if (level == FindingLevel.Warn) Assert.Contains("AES", finding.Advice);
    }

    [Theory]
    [InlineData("over-budget", "a session's queued frames reached its memory budget", "limits.session-memory-kib")] // a client stopped reading, or a small budget
    [InlineData("tun-write-failed", "the tenant's TUN refused packets", "txqueuelen")] // lengthen the TUN's queue
    public void A_drop_that_needs_action_warns_and_says_what_to_change(string reason, string meaning, string advice)
    {
        var findings = MetricsDoctor.Examine($"isotun_tunnel_bytes_total{{tenant=\"acme\",direction=\"rx\"}} 1\nisotun_tunnel_drops_total{{tenant=\"acme\",reason=\"{reason}\"}} 7\n");
        var warning = Assert.Single(findings);
        Assert.Equal(FindingLevel.Warn, warning.Level);
        Assert.Equal($"acme: 7 packets dropped ({reason}): {meaning}", warning.Found);
        Assert.Contains(advice, warning.Advice);
    }

    [Fact]
    public void A_tun_reader_busy_most_of_its_life_says_to_add_queues_and_an_idle_one_says_nothing()
    {
        var findings = MetricsDoctor.Examine("""
            isotun_tun_reader_busy_seconds_total{queue="0",tenant="acme"} 90
            isotun_tun_reader_running_seconds_total{queue="0",tenant="acme"} 100
            isotun_tun_reader_busy_seconds_total{queue="1",tenant="acme"} 20
            isotun_tun_reader_running_seconds_total{queue="1",tenant="acme"} 100
            isotun_tun_reader_busy_seconds_total{queue="0",tenant="young"} 5
            isotun_tun_reader_running_seconds_total{queue="0",tenant="young"} 5
            """);
        var warning = Assert.Single(findings);
        Assert.Equal(FindingLevel.Warn, warning.Level);
        Assert.Contains("acme: TUN queue 0's reader was busy 90%", warning.Found);
        Assert.Contains("`queues`", warning.Advice);
    }

    [Theory]
    [InlineData("")]
    [InlineData("<html>not metrics</html>")]
    [InlineData("node_cpu_seconds_total{cpu=\"0\"} 5\n")]
    public void A_scrape_that_is_not_an_isotun_servers_says_so(string scrape)
    {
        var warning = Assert.Single(MetricsDoctor.Examine(scrape));
        Assert.Equal((FindingLevel.Warn, "no isotun_* series in the scrape"), (warning.Level, warning.Found));
    }

    [Fact]
    public void A_quiet_server_has_no_traffic_yet()
    {
        var finding = Assert.Single(MetricsDoctor.Examine("isotun_sessions_active{tenant=\"acme\"} 0\n"));
        Assert.Equal((FindingLevel.Info, "no tenant traffic yet"), (finding.Level, finding.Found));
    }

    [Fact]
    public async Task An_unreachable_or_non_http_endpoint_is_an_error_text_not_an_exception()
    {
        var (text, error) = await MetricsDoctor.FetchAsync(new Uri("ftp://127.0.0.1/metrics"), TimeSpan.FromSeconds(1));
        Assert.Null(text);
        Assert.Contains("http", error);

        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        (text, error) = await MetricsDoctor.FetchAsync(new Uri($"http://127.0.0.1:{port}/metrics"), TimeSpan.FromSeconds(5));
        Assert.Null(text);
        Assert.False(string.IsNullOrEmpty(error));
    }
}
