using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;

namespace Isotun.UnitTests.Pki;

/// <summary>
/// A client certificate is the peer's to write, down to the address its Authority Information Access names for its
/// issuer. Chains are built offline, by the certificate check and by the TLS server's own look during the handshake:
/// nothing is fetched from that address, and nothing waits for it.
/// </summary>
public sealed class OfflineChainTests : IDisposable
{
    private readonly IssuerSite _site = new();

    public void Dispose() => _site.Dispose();

    [Fact]
    public void The_certificate_check_fetches_no_missing_issuer()
    {
        using var mallory = ForeignClientCertificate(_site.Url);
        using var ourCa = SelfSignedCa("CN=our ca");
        var clock = Stopwatch.StartNew();
        Assert.False(ClientCertificateCheck.ChainsTo(mallory, [ourCa]));
        Assert.False(ClientCertificateCheck.IssuedBy(mallory, ourCa));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the check took {clock.Elapsed}");
        _site.AssertNobodyCame();
    }

    [Fact]
    public async Task A_tls_server_with_the_handshake_policy_fetches_no_missing_issuer()
    {
        using var mallory = ForeignClientCertificate(_site.Url);
        using var serverCert = SelfSignedCa("CN=server");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        using var accepted = await listener.AcceptTcpClientAsync();
        await using var server = new SslStream(accepted.GetStream());
        await using var tls = new SslStream(client.GetStream());
        X509Certificate? seen = null;
        var serving = server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(serverCert, null, offline: true),
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => { seen = certificate; return true; },
            CertificateChainPolicy = ClientCertificateCheck.HandshakePolicy(),
            EnabledSslProtocols = SslProtocols.Tls13,
        });
        var connecting = tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "server",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            // The client's own chain offline too: only the server's look is under test.
            ClientCertificateContext = SslStreamCertificateContext.Create(mallory, null, offline: true),
            EnabledSslProtocols = SslProtocols.Tls13,
        });
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(serving, connecting).WaitAsync(TimeSpan.FromSeconds(30));
        // TLS 1.3: the server reads the client's certificate with its Finished; a byte each way settles both ends.
        await tls.WriteAsync(new byte[] { 1 });
        Assert.Equal(1, await server.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the handshake took {clock.Elapsed}");
        Assert.Equal(mallory.RawData, seen?.GetRawCertData());
        _site.AssertNobodyCame();
    }

    /// <summary>A client certificate from an issuer nobody here knows, whose AIA says to fetch that issuer from <paramref name="issuerUrl"/>.</summary>
    internal static X509Certificate2 ForeignClientCertificate(string issuerUrl)
    {
        using var issuer = SelfSignedCa("CN=an issuer nobody here knows");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=mallory, OU=initech", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [issuerUrl]));
        var now = DateTimeOffset.UtcNow;
        using var leaf = request.Create(issuer, now.AddHours(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(8));
        return leaf.CopyWithPrivateKey(key);
    }

    private static X509Certificate2 SelfSignedCa(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.DigitalSignature, true));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
    }
}

/// <summary>The address a hostile certificate names for its issuer: a loopback listener that counts who comes and answers nothing.</summary>
internal sealed class IssuerSite : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<Socket> _came = [];

    public IssuerSite()
    {
        _listener.Start();
        _ = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var s = await _listener.AcceptSocketAsync();
                    // Only a fetch of the issuer counts: another test's connection to a port it took for closed
                    // (ports are reused) is no fetch.
                    _ = Task.Run(async () =>
                    {
                        var buffer = new byte[1024];
                        int n = 0;
                        try
                        {
                            n = await s.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
                        }
                        catch (Exception e) when (e is SocketException or TimeoutException or ObjectDisposedException)
                        {
                        }
                        if (System.Text.Encoding.ASCII.GetString(buffer, 0, n).Contains("/issuer.crt", StringComparison.Ordinal)) lock (_came) _came.Add(s);
                        else s.Dispose();
                    });
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        });
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/issuer.crt";

    /// <summary>No connection came, including a little while after the check (a fetch started in the background).</summary>
    public void AssertNobodyCame()
    {
        Thread.Sleep(300);
        lock (_came) Assert.True(_came.Count == 0, $"{_came.Count} connection(s) came to the issuer's address");
    }

    public void Dispose()
    {
        _listener.Stop();
        lock (_came) foreach (var s in _came) s.Dispose();
    }
}
