using System.Net;
using System.Net.Sockets;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Routing;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Gateway;

/// <summary>A route's backends: each client's order is stable, clients spread, a down backend is skipped, probes see a node come and go.</summary>
public sealed class BackendPoolTests
{
    private static readonly IPEndPoint[] Three =
        [IPEndPoint.Parse("198.18.66.1:443"), IPEndPoint.Parse("198.18.66.1:8443"), IPEndPoint.Parse("198.18.66.3:443")];

    private static IPAddress Client(int i) => new([198, 19, (byte)(i >> 8), (byte)i]);

    [Fact]
    public void A_clients_order_is_stable_and_clients_spread_over_the_backends()
    {
        var pool = new BackendPool(Three);
        var first = new int[Three.Length];
        for (int i = 0; i < 3000; i++)
        {
            var order = pool.Order(Client(i));
            Assert.Equal(order, pool.Order(Client(i)));
            Assert.Equal([0, 1, 2], order.Order());
            first[order[0]]++;
        }
        Assert.All(first, n => Assert.InRange(n, 800, 1200));
    }

    [Fact]
    public void A_down_backends_clients_move_and_only_they_do()
    {
        var pool = new BackendPool(Three);
        var before = Enumerable.Range(0, 600).Select(i => pool.Order(Client(i))[0]).ToArray();
        pool.MarkDown(1);
        for (int i = 0; i < 600; i++)
        {
            var order = pool.Order(Client(i));
            Assert.Equal(1, order[^1]); // tried last, as a last resort
            if (before[i] != 1) Assert.Equal(before[i], order[0]);
        }
        pool.MarkUp(1);
        Assert.Equal(before, Enumerable.Range(0, 600).Select(i => pool.Order(Client(i))[0]));
    }

    [Fact]
    public async Task A_probe_marks_a_backend_down_when_it_stops_listening_and_up_when_it_is_back()
    {
        using var a = Listen(0);
        using var b = Listen(0);
        var endpoints = new[] { (IPEndPoint)a.LocalEndPoint!, (IPEndPoint)b.LocalEndPoint! };
        var pool = new BackendPool(endpoints);
        Assert.Empty(await pool.ProbeAsync(CancellationToken.None));

        b.Close();
        var changed = await pool.ProbeAsync(CancellationToken.None);
        Assert.Equal([(endpoints[1], false)], changed);
        Assert.False(pool.IsUp(1));
        Assert.Equal(0, pool.Order(IPAddress.Loopback)[0]);

        using var again = Listen(endpoints[1].Port);
        Assert.Equal([(endpoints[1], true)], await pool.ProbeAsync(CancellationToken.None));
        Assert.True(pool.IsUp(1));
    }

    /// <summary>
    /// A route whose backends read PROXY v2 probes with the LOCAL command (the server counts a health check, not a
    /// connection closed before its header); a plain one connects and closes.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_probe_of_proxy_protocol_backends_says_local(bool proxy)
    {
        using var listener = Listen(0);
        var pool = new BackendPool([(IPEndPoint)listener.LocalEndPoint!]) { ProbeSaysLocal = proxy };
        var probe = pool.ProbeAsync(CancellationToken.None);
        using var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await probe;
        var received = new MemoryStream();
        var buffer = new byte[64];
        int n;
        while ((n = await accepted.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(10))) > 0) received.Write(buffer, 0, n);
        var expected = proxy ? Isotun.Protocol.Proxy.ProxyV2Writer.ToArray(Isotun.Protocol.Proxy.ProxyHeader.Local()) : [];
        Assert.Equal(expected, received.ToArray());
    }

    /// <summary>A reload's new pool keeps the health of the backends the old one had; a new backend starts up.</summary>
    [Fact]
    public void A_new_pool_keeps_the_health_of_the_backends_the_old_one_had()
    {
        var a = new IPEndPoint(IPAddress.Parse("198.18.66.1"), 443);
        var b = new IPEndPoint(IPAddress.Parse("198.18.66.2"), 443);
        var c = new IPEndPoint(IPAddress.Parse("198.18.66.3"), 443);
        var old = new BackendPool([a, b]);
        old.MarkDown(1);
        var fresh = new BackendPool([b, c, new IPEndPoint(IPAddress.Parse("198.18.66.1"), 443)]);
        fresh.KeepHealthOf(old);
        Assert.Equal([false, true, true], Enumerable.Range(0, 3).Select(fresh.IsUp));
    }

    [Fact]
    public void Routes_take_one_backend_or_a_list_of_them_and_faults_are_listed()
    {
        using var dir = new TempDirectory();
        var ok = GatewayConfigLoader.Parse("""
            listen: 198.18.66.1:4443
            routes:
              - sni: vpn.acme.example
                passthrough: { backends: [198.18.66.1:443, "198.18.66.1:8443"] }
              - sni: vpn.globex.example
                passthrough: { backend: 198.18.67.1:443 }
            """, dir.File("gateway.yaml"));
        Assert.True(ok.Ok, string.Join("\n", ok.Errors));
        Assert.Equal([IPEndPoint.Parse("198.18.66.1:443"), IPEndPoint.Parse("198.18.66.1:8443")], ok.Config!.Routes[0].Backends);
        Assert.Single(ok.Config.Routes[1].Backends);

        var bad = GatewayConfigLoader.Parse("""
            routes:
              - sni: a.example
                passthrough: { backend: 198.18.66.1:443, backends: [198.18.66.1:8443] }
              - sni: b.example
                passthrough: { backends: [198.18.66.1:443, 198.18.66.1:443, nonsense] }
              - sni: c.example
                passthrough: { backends: [] }
            """, dir.File("gateway.yaml"));
        Assert.Equal(new[]
        {
            "routes[0].passthrough: give backend or backends, not both",
            "routes[1].passthrough.backends[1]: 198.18.66.1:443 is listed twice",
            "routes[1].passthrough.backends[2]: must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535",
            "routes[2].passthrough.backends: at least one backend is required",
        }, bad.Errors.Select(e => e.ToString()));
    }

    private static Socket Listen(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        s.Bind(new IPEndPoint(IPAddress.Loopback, port));
        s.Listen(16);
        return s;
    }
}
