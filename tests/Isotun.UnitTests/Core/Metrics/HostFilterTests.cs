using Isotun.UnitTests.Gateway;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Isotun.Metrics;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>
/// The Host check of the operator's TCP listeners (DNS rebinding): IP addresses and localhost pass, listed names pass,
/// anything else is refused; and the gateway's metrics endpoint, on a real loopback port, answers 421 to a foreign name.
/// </summary>
public sealed class HostFilterTests
{
    [Theory]
    [InlineData("127.0.0.1:9410", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("[::1]:9410", true)]
    [InlineData("198.18.0.10:9420", true)]
    [InlineData("localhost:9410", true)]
    [InlineData("LOCALHOST.", true)]
    [InlineData("", true)] // HTTP/1.0 without a Host: no browser sends that
    [InlineData("metrics.example.net:9410", true)] // listed
    [InlineData("Metrics.Example.NET", true)]
    [InlineData("gw1.fleet.example.net", true)] // under *.fleet.example.net
    [InlineData("fleet.example.net", false)] // the wildcard names what is under it, not itself
    [InlineData("evil.example:9410", false)]
    [InlineData("metrics.example.net.evil.example", false)]
    [InlineData("xmetrics.example.net", false)]
    [InlineData("localhost.evil.example", false)]
    [InlineData("127.0.0.1.evil.example", false)]
    public void Allows_addresses_localhost_and_the_listed_names_only(string host, bool allowed) =>
        Assert.Equal(allowed, HostFilter.Allows(host, ["metrics.example.net", "*.fleet.example.net"]));

    [Fact]
    public async Task The_metrics_endpoint_refuses_a_name_it_was_not_given_and_serves_one_it_was()
    {
        int port = LoopbackTcp.FreePort();
        using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port), ["scrape.example.net"]);
        var (status, body) = await GetAsync(port, "rebound.example");
        Assert.Equal(421, status);
        Assert.Contains("admin.hosts", body);
        Assert.DoesNotContain("rebound.example", body);
        Assert.Equal(200, (await GetAsync(port, "scrape.example.net:" + port)).Status);
        Assert.Equal(200, (await GetAsync(port, "127.0.0.1:" + port)).Status);
    }

    /// <summary>A GET /metrics with the given Host header, over a raw socket (HttpClient sets Host from the URL).</summary>
    internal static async Task<(int Status, string Body)> GetAsync(int port, string host, string path = "/metrics")
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var answer = new MemoryStream();
        var buffer = new byte[65536];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, guard.Token)) > 0) answer.Write(buffer, 0, n);
        var text = Encoding.UTF8.GetString(answer.ToArray());
        int status = int.Parse(text.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        return (status, text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..]);
    }
}
