using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Isotun.Metrics;
using Isotun.Server;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A peer that connects and closes without a byte (a load balancer's or the gateway's health check) is counted as
/// no-data and logged at Debug only; one that sends something that is not TLS is still a failed handshake.
/// </summary>
public sealed class PortProbeTests
{
    [Fact]
    public async Task A_connection_closed_before_its_first_byte_is_no_data_at_debug_and_not_a_failed_handshake()
    {
        await using var recorded = new RecordedServer();
        var (server, log, recording) = (recorded.Server, recorded.Log, recorded.Recording);
        long noData = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == IsotunMetrics.MeterName && i.Name == "isotun.connections.closed") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var t in tags)
                if (t.Key == "reason" && t.Value as string == "no-data") Interlocked.Add(ref noData, value);
        });
        listener.Start();

        await RunAsync(server, log, id: 1, send: []);
        await RunAsync(server, log, id: 2, send: "GET / HTTP/1.1\r\n\r\n"u8.ToArray());

        var probe = Assert.Single(recording.Lines, l => l.Text.Contains("conn=1 ", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Debug, probe.Level);
        Assert.Contains("closed by the peer before it sent a byte", probe.Text);
        Assert.True(Interlocked.Read(ref noData) >= 1);
        var garbage = Assert.Single(recording.Lines, l => l.Text.Contains("conn=2 ", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Information, garbage.Level);
        Assert.Contains("TLS handshake failed", garbage.Text);
    }

    /// <summary>A real TCP connection on loopback whose peer sends <paramref name="send"/> and closes, served by RunTlsAsync.</summary>
    private static async Task RunAsync(VpnServer server, ILogger log, long id, byte[] send)
    {
        using var listen = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listen.Listen(1);
        using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listen.LocalEndPoint!);
        var accepted = await listen.AcceptAsync();
        if (send.Length > 0) await peer.SendAsync(send);
        peer.Shutdown(SocketShutdown.Send);
        await new ServerConnection(server, id, log).RunTlsAsync(accepted, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
    }
}
