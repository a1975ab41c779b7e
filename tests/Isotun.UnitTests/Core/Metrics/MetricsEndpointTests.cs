using Isotun.UnitTests.Gateway;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Isotun.Metrics;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>
/// The gateway's metrics endpoint on a real loopback port: it serves, a port in use is named in the error, and a
/// scraper that stops reading neither holds up the others nor keeps its connection past the write deadline.
/// </summary>
public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Serves_metrics_and_a_second_one_on_the_same_port_names_the_port_in_its_error()
    {
        int port = LoopbackTcp.FreePort();
        var at = new IPEndPoint(IPAddress.Loopback, port);
        using var first = new MetricsEndpoint(at);
        using var http = new HttpClient();
        var response = await http.GetAsync($"http://127.0.0.1:{port}/metrics");
        Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());

        var e = Assert.Throws<IOException>(() => new MetricsEndpoint(at));
        Assert.StartsWith($"the metrics endpoint cannot listen on {at}: ", e.Message);
    }

    /// <summary>
    /// Only the config says where the operator's listeners listen: a Kestrel endpoint named in the environment (or in an
    /// appsettings.json in the working directory, read the same way) opens nothing.
    /// </summary>
    [Fact]
    public async Task An_endpoint_named_in_the_environment_opens_nothing()
    {
        int stray = LoopbackTcp.FreePort();
        const string Variable = "Kestrel__Endpoints__stray__Url";
        Environment.SetEnvironmentVariable(Variable, $"http://127.0.0.1:{stray}");
        try
        {
            int port = LoopbackTcp.FreePort();
            using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port));
            using var http = new HttpClient();
            var response = await http.GetAsync($"http://127.0.0.1:{port}/metrics");
            Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var e = await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync(IPAddress.Loopback, stray));
            Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
        }
        finally
        {
            Environment.SetEnvironmentVariable(Variable, null);
        }
    }

    [Fact]
    public async Task A_scraper_that_stops_reading_holds_up_no_other()
    {
        using var big = BigMeter();
        int port = LoopbackTcp.FreePort();
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port)) { WriteTimeout = TimeSpan.FromMinutes(2) };
        using var stuck = await StuckScraperAsync(port);

        // Served one after the other, this scrape would wait for the stuck one's two minutes.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        var body = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        Assert.Contains("isotun_test_big_series", body);
        Assert.True(body.Length > 8_000_000, $"the body ({body.Length} bytes) is too small to stall a writer");
    }

    [Fact]
    public async Task A_scraper_that_stops_reading_is_cut_off_at_the_write_deadline()
    {
        using var big = BigMeter();
        int port = LoopbackTcp.FreePort();
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port)) { WriteTimeout = TimeSpan.FromSeconds(1) };
        using var stuck = await StuckScraperAsync(port);
        await Task.Delay(TimeSpan.FromSeconds(3));

        // Reading now finds the connection ended short of the body: aborted, not finished (a reset may also drop what
        // the socket had received).
        long read = 0;
        var buffer = new byte[65536];
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int n;
            while ((n = await stuck.ReceiveAsync(buffer, guard.Token)) > 0) read += n;
        }
        catch (SocketException)
        {
            // reset: the same
        }
        Assert.False(guard.IsCancellationRequested, "the stuck scraper's connection was never closed");
        Assert.InRange(read, 0, 8_000_000);
    }

    [Fact]
    public async Task A_peer_that_sends_part_of_a_head_and_stops_is_cut_off_at_the_head_deadline()
    {
        int port = LoopbackTcp.FreePort();
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port));
        using var slow = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await slow.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await slow.SendAsync("G"u8.ToArray());
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[1024];
        try
        {
            while (await slow.ReceiveAsync(buffer, guard.Token) > 0) { } // a 408, then the end
        }
        catch (SocketException)
        {
            // reset: the same
        }
        Assert.False(guard.IsCancellationRequested, "a peer that sent one byte of a head kept its connection for 30 s");
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(25));
    }

    /// <summary>
    /// Loopback peers are not capped per address: every local client (a browser with the dashboard in two tabs, a local
    /// Prometheus, the CLI) is 127.0.0.1, and the cap set them against each other.
    /// </summary>
    [Fact]
    public async Task Loopback_peers_are_not_capped_per_address()
    {
        int port = LoopbackTcp.FreePort();
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port));
        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < 2 * OperatorListener.PerSource; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                held.Add(s);
            }
            await Task.Delay(300); // all of them counted
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            Assert.True((await http.GetAsync($"http://127.0.0.1:{port}/metrics")).IsSuccessStatusCode);
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
    }

    [Fact]
    public async Task One_address_gets_a_few_connections_and_the_others_still_scrape()
    {
        int port = LoopbackTcp.FreePort();
        // Loopback peers are capped here only because the test has no other addresses (the product leaves them uncapped).
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port), null, capLoopback: true);
        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < OperatorListener.PerSource; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                held.Add(s);
            }
            await Task.Delay(300); // all of them counted
            using var extra = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await extra.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
            await extra.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            int n;
            try
            {
                n = await extra.ReceiveAsync(new byte[1024], guard.Token);
            }
            catch (SocketException)
            {
                n = 0;
            }
            Assert.Equal(0, n); // closed unanswered

            // Another address (127.0.0.2 is loopback too) is served meanwhile.
            using var other = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            other.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
            await other.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
            await other.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
            var answer = new byte[64];
            Assert.True(await other.ReceiveAsync(answer, guard.Token) > 0);
            Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(answer));
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
    }

    /// <summary>A meter (picked up by the endpoint's "Isotun" prefix) whose scrape is over 8 MB: more than socket buffers hold.</summary>
    private static Meter BigMeter()
    {
        var meter = new Meter("Isotun.Test.BigScrape." + Guid.NewGuid().ToString("N"));
        var series = Enumerable.Range(0, 250_000).Select(i => new Measurement<long>(1, new KeyValuePair<string, object?>("series", $"series-{i:D6}"))).ToArray();
        meter.CreateObservableGauge("isotun.test.big.series", () => series);
        return meter;
    }

    /// <summary>Asks for /metrics with a small receive window, and then reads nothing.</summary>
    private static async Task<Socket> StuckScraperAsync(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await s.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        await Task.Delay(500); // its scrape is under way, stalled
        return s;
    }
}
