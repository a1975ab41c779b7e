using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.Server;
using Isotun.UnitTests.Gateway;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A client certificate is the peer's to write: one the runtime cannot parse (an extended key usage in BER where DER
/// is required) ends that connection as a failed handshake or a refused login, counted, and nothing escapes it.
/// </summary>
public sealed class HostileClientCertificateTests : IDisposable
{
    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public async Task A_client_certificate_the_runtime_cannot_parse_ends_its_connection_as_a_failed_handshake()
    {
        var pki = new PkiDirectory(_files.File("pki"));
        pki.InitCa();
        pki.IssueServer("server", [IPAddress.Parse("198.18.0.1")], []);
        await using var recorded = new RecordedServer(_files, "client-ca: pki/ca.crt");
        var results = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter == recorded.Server.Metrics.Meter && i.Name == "isotun.tls.handshakes") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var t in tags)
                if (t.Key == "result") lock (results) results.Add((string)t.Value!);
        });
        listener.Start();

        using var listen = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listen.Listen(1);
        using var odd = EdgeGatewayTests.MalformedUsageCertificate();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync((IPEndPoint)listen.LocalEndPoint!);
        using var accepted = await listen.AcceptAsync();
        var serve = new ServerConnection(recorded.Server, 1, recorded.Log).RunTlsAsync(accepted, CancellationToken.None);
        await using var tls = new SslStream(tcp.GetStream(), false);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "198.18.0.1",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                ClientCertificates = [odd],
                EnabledSslProtocols = SslProtocols.Tls13,
            });
            await tls.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is IOException or AuthenticationException or SocketException)
        {
        }

        await serve.WaitAsync(TimeSpan.FromSeconds(30)); // nothing thrown out of the connection
        lock (results) Assert.Equal(["failed"], results);
        Assert.DoesNotContain(recorded.Recording.Lines, l => l.Level >= LogLevel.Error);
    }
}
