using System.Net;
using System.Net.Sockets;
using Isotun.Config;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A listener whose port is taken fails the server's start with the listener and the address named, the PROXY v2
/// listener as the TLS one (it used to log the error and leave the server running without it).
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessListenerStartTests(InProcessPki pki)
{
    [Fact]
    public async Task A_proxy_listener_whose_port_is_taken_fails_the_start_and_names_the_address()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen(1);
        var at = (IPEndPoint)taken.LocalEndPoint!;
        var e = await Assert.ThrowsAsync<IOException>(() => InProcessServer.StartAsync(pki, uso: true,
            server: c => c with { Proxy = new ProxyConfig(at, [IPNetwork.Parse("127.0.0.1/32")], TimeSpan.FromSeconds(5)) }));
        Assert.StartsWith($"the PROXY v2 listener cannot listen on {at}: ", e.Message);
    }
}
