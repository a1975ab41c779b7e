using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// SSL_MODE_RELEASE_BUFFERS on a real SslStream over loopback TCP: set after the handshake (this runtime's SslStream
/// and the system's libssl 3 are what the server runs on), and the connection carries data both ways afterwards, in
/// records large and small, with idle gaps in between (when OpenSSL has given its buffers back).
/// </summary>
public sealed class NativeTlsTests
{
    /// <summary>A self-signed ECDSA server certificate with its key (also for the record layer's tests).</summary>
    internal static X509Certificate2 Certificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var self = new CertificateRequest("CN=release-buffers", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(self.Export(X509ContentType.Pkcs12), null);
    }

    private static async Task<(SslStream Server, SslStream Client, IDisposable Sockets)> PairAsync(SslProtocols protocol)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var accepted = await listener.AcceptTcpClientAsync();
        var server = new SslStream(accepted.GetStream());
        var tls = new SslStream(client.GetStream(), false, (_, _, _, _) => true);
        using var cert = Certificate();
        await Task.WhenAll(
            server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = cert, EnabledSslProtocols = protocol }),
            tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "release-buffers", EnabledSslProtocols = protocol }));
        return (server, tls, new Both(accepted, client));
    }

    private sealed class Both(TcpClient a, TcpClient b) : IDisposable
    {
        public void Dispose()
        {
            a.Dispose();
            b.Dispose();
        }
    }

    [Theory]
    [InlineData(SslProtocols.Tls13)]
    [InlineData(SslProtocols.Tls12)]
    public async Task The_mode_is_set_after_the_handshake_and_data_still_flows_both_ways(SslProtocols protocol)
    {
        var (server, client, sockets) = await PairAsync(protocol);
        using (sockets)
        await using (server)
        await using (client)
        {
            Assert.True(NativeTls.Available);
            Assert.True(NativeTls.ReleaseBuffers(server));
            Assert.True(NativeTls.ReleaseBuffers(client));
            foreach (int size in new[] { 1, 1400, 16384, 100_000 })
            {
                var data = RandomNumberGenerator.GetBytes(size);
                await server.WriteAsync(data);
                Assert.Equal(data, await ReadExactlyAsync(client, size));
                await client.WriteAsync(data);
                Assert.Equal(data, await ReadExactlyAsync(server, size));
                await Task.Delay(20); // idle: OpenSSL holds no record buffer now
            }
        }
    }

    /// <summary>
    /// A resumed session still shows the client's certificate, the one of its first handshake, and OpenSSL says it
    /// was resumed: certificate login holds for a client back with its ticket (openssl s_client, which resumes with a
    /// client certificate; the runtime's own client does not).
    /// </summary>
    [SkippableFact]
    public async Task A_resumed_session_shows_the_certificate_of_its_first_handshake()
    {
        var skip = SClient.SkipReason("resumption with a client certificate");
        Skip.If(skip is not null, skip);
        using var temp = new Isotun.UnitTests.Security.TempDirectory();
        using var clientKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var clientCert = new CertificateRequest("CN=alice", clientKey, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(temp.File("alice.crt"), clientCert.ExportCertificatePem());
        File.WriteAllText(temp.File("alice.key"), clientKey.ExportPkcs8PrivateKeyPem());
        using var serverCert = Certificate();
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(serverCert, null, offline: true),
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
        };
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;

        async Task<(bool? Resumed, string? Thumbprint)> HandshakeAsync(string sessionOption)
        {
            using var client = SClient.Start("-connect", $"127.0.0.1:{port}", "-tls1_3", "-cert", temp.File("alice.crt"), "-key", temp.File("alice.key"), sessionOption, temp.File("session.pem"));
            using var accepted = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(30));
            await using var server = new SslStream(accepted.GetStream());
            await server.AuthenticateAsServerAsync(options).WaitAsync(TimeSpan.FromSeconds(30));
            var seen = (NativeTls.Resumed(server), server.RemoteCertificate is { } rc ? new X509Certificate2(rc).Thumbprint : null);
            await server.WriteAsync("x"u8.ToArray()); // the client reads the tickets with it
            await client.EndAsync(TimeSpan.FromMilliseconds(300));
            return seen;
        }

        Assert.Equal((false, clientCert.Thumbprint), await HandshakeAsync("-sess_out"));
        Assert.Equal((true, clientCert.Thumbprint), await HandshakeAsync("-sess_in"));
    }

    private static async Task<byte[]> ReadExactlyAsync(Stream stream, int size)
    {
        var buffer = new byte[size];
        await stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return buffer;
    }
}
