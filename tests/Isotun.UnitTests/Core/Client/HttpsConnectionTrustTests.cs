using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Client;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Client;

/// <summary>
/// How the client decides to trust a server, against a real TLS listener on loopback: by a CA bundle (chain and name),
/// by a pin, and that its own certificate reaches the server; and that the files behind them are read once and again
/// only when they change.
/// </summary>
public sealed class HttpsConnectionTrustTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly PkiDirectory _pki;
    private readonly PkiDirectory _otherPki;

    public HttpsConnectionTrustTests()
    {
        _pki = new PkiDirectory(_dir.File("pki"));
        _pki.InitCa();
        _otherPki = new PkiDirectory(_dir.File("other"));
        _otherPki.InitCa("Other CA");
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>A TLS server on 127.0.0.1 with <paramref name="server"/>'s certificate that asks for a client certificate; returns the subject of the client's certificate once the handshake is done (.NET's client checks the server after the handshake, so a refused server still completes one).</summary>
    private static async Task<(Task<string?> ClientSubject, Uri Url)> ListenAsync(IssuedCertificate server, CancellationToken ct)
    {
        var cert = PemLoader.LoadCertificateWithKey(server.CertificatePath, server.KeyPath);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var url = new Uri($"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");
        async Task<string?> Serve()
        {
            try
            {
                using var accepted = await listener.AcceptTcpClientAsync(ct);
                await using var tls = new SslStream(accepted.GetStream(), false, (_, _, _, _) => true);
                try
                {
                    await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = cert, ClientCertificateRequired = true }, ct);
                }
                catch (Exception e) when (e is AuthenticationException or IOException)
                {
                    return null;
                }
                return (tls.RemoteCertificate as X509Certificate2)?.Subject ?? "";
            }
            finally
            {
                listener.Dispose();
            }
        }
        await Task.Yield();
        return (Serve(), url);
    }

    private ClientOptions Options(Uri url, string? ca = null, string? pin = null, bool clientCert = false)
    {
        var client = clientCert ? _pki.IssueClient("certs", "carol", force: true) : null;
        return new() { Server = url, CaFile = ca, ServerPin = pin, CertificateFile = client?.CertificatePath, KeyFile = client?.KeyPath };
    }

    /// <summary>Serves <paramref name="server"/>'s certificate to a client that trusts as <paramref name="options"/> says: it refuses; why.</summary>
    private static async Task<string> RefusalAsync(IssuedCertificate server, Func<Uri, ClientOptions> options)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (_, url) = await ListenAsync(server, cts.Token);
        var e = await Assert.ThrowsAsync<ClientException>(async () => await (await HttpsConnection.OpenAsync(options(url), cts.Token)).DisposeAsync());
        Assert.Equal(ClientExitCode.CertificateRejected, e.Code);
        return e.Message;
    }

    [Fact]
    public async Task A_server_issued_by_the_given_CA_for_the_address_dialled_is_trusted_and_sees_the_client_certificate()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (seen, url) = await ListenAsync(_pki.IssueServer("vpn", [IPAddress.Loopback], []), cts.Token);
        await using (var conn = await HttpsConnection.OpenAsync(Options(url, ca: _pki.CaCertificatePath, clientCert: true), cts.Token))
            Assert.NotNull(conn.ServerCertificate);
        Assert.Contains("CN=carol", await seen);
    }

    [Fact]
    public async Task A_server_issued_by_another_CA_is_refused_with_that_reason() =>
        Assert.Equal("server certificate is not issued by the given CA",
            await RefusalAsync(_otherPki.IssueServer("vpn", [IPAddress.Loopback], []), url => Options(url, ca: _pki.CaCertificatePath)));

    [Fact]
    public async Task A_server_of_the_given_CA_but_for_another_name_is_refused_with_that_reason() =>
        Assert.Equal("server certificate is not valid for 127.0.0.1",
            await RefusalAsync(_pki.IssueServer("elsewhere", [], ["elsewhere.example"]), url => Options(url, ca: _pki.CaCertificatePath)));

    [Fact]
    public async Task A_pin_trusts_the_pinned_certificate_whatever_its_issuer_and_refuses_any_other()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stranger = _otherPki.IssueServer("vpn", [], ["not-this-address.example"]);
        using (var cert = PemLoader.LoadCertificate(stranger.CertificatePath))
        {
            var (_, url) = await ListenAsync(stranger, cts.Token);
            await using var conn = await HttpsConnection.OpenAsync(Options(url, pin: CertificatePin.Compute(cert)), cts.Token);
            Assert.Equal(cert.Thumbprint, conn.ServerCertificate!.Thumbprint);
        }

        Assert.StartsWith("server certificate does not match the pin",
            await RefusalAsync(_pki.IssueServer("vpn", [IPAddress.Loopback], []), url => Options(url, pin: "pin-sha256:" + Convert.ToBase64String(new byte[32]))));
    }

    [Fact]
    public void The_files_are_read_once_and_again_when_one_changes()
    {
        var o = Options(new Uri("https://127.0.0.1/"), ca: _pki.CaCertificatePath, clientCert: true);
        var first = ClientTlsMaterial.For(o);
        Assert.Same(first, ClientTlsMaterial.For(o));
        Assert.Same(first, ClientTlsMaterial.For(o with { }));
        Assert.Contains("CN=carol", first.Identity!.TargetCertificate.Subject);
        Assert.Single(first.Authorities!);

        var renewed = _pki.IssueClient("certs", "carol", force: true); // the same paths, new files
        File.SetLastWriteTimeUtc(renewed.CertificatePath, DateTime.UtcNow.AddMinutes(1));
        var second = ClientTlsMaterial.For(o);
        Assert.NotSame(first, second);
        Assert.NotEqual(first.Identity.TargetCertificate.Thumbprint, second.Identity!.TargetCertificate.Thumbprint);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var o = Options(new Uri("https://127.0.0.1/"), ca: _dir.File("missing-ca.crt"));
        var e = Assert.Throws<PkiException>(() => ClientTlsMaterial.For(o));
        Assert.Contains("missing-ca.crt", e.Message);
    }
}
