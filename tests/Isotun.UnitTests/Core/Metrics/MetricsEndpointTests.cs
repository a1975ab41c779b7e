using System.Net;
using System.Net.Sockets;
using Isotun.Metrics;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>The gateway's metrics endpoint on a real loopback port: it serves, and a port in use is named in the error.</summary>
public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Serves_metrics_and_a_second_one_on_the_same_port_names_the_port_in_its_error()
    {
        int port;
        using (var free = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            free.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)free.LocalEndPoint!).Port;
        }
        var at = new IPEndPoint(IPAddress.Loopback, port);
        using var first = new MetricsEndpoint(at);
        using var http = new HttpClient();
        var response = await http.GetAsync($"http://127.0.0.1:{port}/metrics");
        Assert.True(response.IsSuccessStatusCode, response.StatusCode.ToString());

        var e = Assert.Throws<IOException>(() => new MetricsEndpoint(at));
        Assert.StartsWith($"the metrics endpoint cannot listen on {at}: ", e.Message);
    }
}
