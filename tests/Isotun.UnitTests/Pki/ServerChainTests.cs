using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Pki;

/// <summary>
/// A server certificate from a CA usually comes with the CA's intermediate in the same file (a "full chain"). The
/// server sends the intermediates with its certificate, so a client that trusts only the root (a stock openconnect
/// with the system's roots) can build the chain.
/// </summary>
public sealed class ServerChainTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task The_intermediates_in_the_certificate_file_go_out_with_the_certificate()
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var root = Ca("CN=Chain Test Root", rootKey, issuer: null, issuerKey: null);
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var intermediate = Ca("CN=Chain Test Intermediate", intermediateKey, root, rootKey);
        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=vpn.chain.example", leafKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("vpn.chain.example");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var leaf = request.Create(intermediate.SubjectName, X509SignatureGenerator.CreateForECDsa(intermediateKey),
            DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(30), [1, 2, 3, 4]);

        var key = _temp.File("server.key");
        File.WriteAllText(key, leafKey.ExportPkcs8PrivateKeyPem());
        var alone = _temp.File("alone.crt");
        File.WriteAllText(alone, leaf.ExportCertificatePem());
        var fullChain = _temp.File("fullchain.crt");
        File.WriteAllText(fullChain, leaf.ExportCertificatePem() + "\n" + intermediate.ExportCertificatePem() + "\n");

        // Without the intermediate the client cannot reach its root; with it, it can.
        Assert.NotEqual(SslPolicyErrors.None, await HandshakeAsync(alone, key, root));
        Assert.Equal(SslPolicyErrors.None, await HandshakeAsync(fullChain, key, root));
    }

    /// <summary>What a client that trusts <paramref name="root"/> alone, and fetches nothing, makes of the server's certificate.</summary>
    private static async Task<SslPolicyErrors> HandshakeAsync(string certificate, string key, X509Certificate2 root)
    {
        using var cert = PemLoader.LoadCertificateWithKey(certificate, key);
        var context = PemLoader.ServerContext(cert, certificate);
        var (a, b) = SocketPair();
        await using var server = new SslStream(new NetworkStream(a, ownsSocket: true));
        SslPolicyErrors? seen = null;
        await using var client = new SslStream(new NetworkStream(b, ownsSocket: true), false, (_, _, _, errors) =>
        {
            seen = errors;
            return true;
        });
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, DisableCertificateDownloads = true, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(root);
        await Task.WhenAll(
            server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = context }),
            client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "vpn.chain.example", CertificateChainPolicy = policy }))
            .WaitAsync(TimeSpan.FromSeconds(30));
        return seen!.Value;
    }

    private static (Socket, Socket) SocketPair()
    {
        var path = new UnixDomainSocketEndPoint("\0isotun-chain-test-" + Guid.NewGuid().ToString("N"));
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(path);
        listener.Listen(1);
        var dialer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        dialer.Connect(path);
        return (listener.Accept(), dialer);
    }

    private static X509Certificate2 Ca(string subject, ECDsa key, X509Certificate2? issuer, ECDsa? issuerKey)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var from = DateTimeOffset.UtcNow.AddMinutes(-10);
        var until = DateTimeOffset.UtcNow.AddDays(60);
        return issuer is null
            ? request.CreateSelfSigned(from, until)
            : request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey!), from, until, [5, 6, 7, 8]);
    }
}
