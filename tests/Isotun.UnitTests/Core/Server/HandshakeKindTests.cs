using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Isotun.Metrics;
using Isotun.Server;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// Successful handshakes are counted as full or resumed: a stock TLS client (openssl s_client) that comes back with
/// the session ticket it was given is counted as resumed, its first handshake as full.
/// </summary>
[Collection(InProcess.InProcessCollection.Name)] // apart from the in-process tests, whose clients may resume sessions of their own
public sealed class HandshakeKindTests
{
    private const string OpenSsl = "/usr/bin/openssl";

    [SkippableFact]
    public async Task A_client_back_with_its_ticket_is_a_resumed_handshake_and_its_first_a_full_one()
    {
        Skip.If(!File.Exists(OpenSsl), $"{OpenSsl} is missing (Debian package openssl; .ci/install-deps installs it): handshake kinds were not checked");
        await using var recorded = new RecordedServer();
        var (server, log) = (recorded.Server, recorded.Log);
        var kinds = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == IsotunMetrics.MeterName && i.Name == "isotun.tls.handshakes") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var t in tags)
                if (t.Key == "kind") lock (kinds) kinds.Add((string)t.Value!);
        });
        listener.Start();

        using var listen = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listen.Listen(2);
        int port = ((IPEndPoint)listen.LocalEndPoint!).Port;
        var session = recorded.File("session.pem");

        int Resumed() { lock (kinds) return kinds.Count(k => k == "resumed"); }

        var first = await HandshakeAsync(server, log, listen, id: 1, port, "-sess_out", session);
        Assert.Contains("New, TLSv1.3", first);
        Assert.Equal(0, Resumed());
        lock (kinds) Assert.Contains("full", kinds);
        var second = await HandshakeAsync(server, log, listen, id: 2, port, "-sess_in", session);
        Assert.Contains("Reused, TLSv1.3", second); // the client says so too
        Assert.Equal(1, Resumed());
    }

    /// <summary>One openssl s_client connection, served by RunTlsAsync; returns what the client printed.</summary>
    private static async Task<string> HandshakeAsync(VpnServer server, ILogger log, Socket listen, long id, int port, string sessionOption, string session)
    {
        var psi = new ProcessStartInfo(OpenSsl, ["s_client", "-connect", $"127.0.0.1:{port}", "-tls1_3", sessionOption, session])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var client = Process.Start(psi)!;
        var output = client.StandardOutput.ReadToEndAsync();
        var accepted = await listen.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var serve = new ServerConnection(server, id, log).RunTlsAsync(accepted, CancellationToken.None);
        // Give the ticket time to arrive, then end the client: it saves the session as it leaves.
        await Task.Delay(500);
        client.StandardInput.Close();
        await serve.WaitAsync(TimeSpan.FromSeconds(30));
        await client.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return await output;
    }
}
