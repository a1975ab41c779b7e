using System.Net;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A server certificate is renewed in place (a new certificate and key under the same names, as a CA's renewal
/// leaves them): a reload puts it to work for new handshakes, without a restart and without ending a session. A
/// renewal that cannot be used refuses the reload and leaves the certificate in use; tls.client-ca stays read at start.
/// </summary>
[Collection(InProcess.InProcessCollection.Name)] // apart from the in-process tests, whose clients may resume sessions of their own
public sealed class CertificateRenewalTests : IDisposable
{
    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    private PkiDirectory Pki => new(_files.File("pki"));

    private void Renew() => Pki.IssueServer("server", [IPAddress.Parse("198.18.0.1")], [], force: true);

    [SkippableFact]
    public async Task A_renewed_certificate_is_presented_after_a_reload_and_tickets_from_before_still_resume()
    {
        var skip = SClient.SkipReason("certificate renewal");
        Skip.If(skip is not null, skip);
        await using var recorded = new RecordedServer(_files, "ticket-key-file: state/ticket.key");
        var server = recorded.Server;
        await server.UseTicketKeyAsync(CancellationToken.None);
        var before = server.ServerCertificate;
        var session = _files.File("session.pem");
        var first = await HandshakeKindTests.HandshakeOnceAsync(recorded, "-sess_out", session);
        Assert.True(first.Contains("New, TLSv1.3"), first);
        Assert.Contains(Body(before), Flat(first));

        Assert.Equal(["tenant t1: applied"], server.Reload()); // the same files: nothing renewed
        Renew();
        var report = server.Reload();
        Assert.True(report.Count == 2 && report[1].StartsWith("tls.certificate: renewed, new handshakes present it (pin pin-sha256:", StringComparison.Ordinal),
            string.Join("\n", report));
        using var renewed = X509CertificateLoader.LoadCertificateFromFile(_files.File("pki/server.crt"));
        Assert.NotEqual(before.Thumbprint, renewed.Thumbprint);
        Assert.Equal(renewed.Thumbprint, server.ServerCertificate.Thumbprint);
        Assert.Contains(recorded.Recording.Lines, l => l.Text.Contains("server certificate") && l.Text.Contains("renewed"));

        // A client back with its ticket from before the renewal resumes (the kept ticket key seals both contexts' tickets).
        var back = await HandshakeKindTests.HandshakeOnceAsync(recorded, "-sess_in", session);
        Assert.True(back.Contains("Reused, TLSv1.3"), back);
        // A new client is shown the renewed certificate.
        var fresh = await HandshakeKindTests.HandshakeOnceAsync(recorded, "-sess_out", _files.File("fresh.pem"));
        Assert.True(fresh.Contains("New, TLSv1.3"), fresh);
        Assert.Contains(Body(renewed), Flat(fresh));
        Assert.DoesNotContain(Body(before), Flat(fresh));
        Assert.Equal(["tenant t1: applied"], server.Reload()); // renewed once, not at every reload after
    }

    [Fact]
    public async Task A_renewal_whose_key_does_not_match_refuses_the_reload_and_the_certificate_in_use_stays()
    {
        await using var recorded = new RecordedServer(_files);
        var server = recorded.Server;
        var before = server.ServerCertificate.Thumbprint;
        var other = Pki.IssueServer("other", [], []);
        File.Copy(other.CertificatePath, _files.File("pki/server.crt"), overwrite: true); // a new certificate, the old key
        var report = server.Reload();
        Assert.StartsWith("reload refused", report[0]);
        Assert.True(report.Any(l => l.StartsWith("  tls.certificate:", StringComparison.Ordinal) && l.Contains("match")), string.Join("\n", report));
        Assert.Equal(before, server.ServerCertificate.Thumbprint);
        Assert.Equal(before, server.TlsOptions.ServerCertificateContext!.TargetCertificate.Thumbprint);
    }

    [Fact]
    public async Task New_contents_of_tls_client_ca_refuse_the_reload_until_a_restart()
    {
        Pki.InitCa();
        Pki.IssueServer("server", [IPAddress.Parse("198.18.0.1")], []);
        await using var recorded = new RecordedServer(_files, "client-ca: pki/ca.crt");
        var server = recorded.Server;
        Assert.Equal(["tenant t1: applied"], server.Reload());
        Pki.InitCa(commonName: "Another CA", force: true);
        var report = server.Reload();
        Assert.StartsWith("reload refused", report[0]);
        Assert.Contains("  the contents of tls.client-ca changed (it is read at start): restart the server to apply", report);
    }

    /// <summary>
    /// When the certificate in use expires is a metric an alert can watch, and follows a renewal; one that expires
    /// within 14 days (or has) is warned of at start and at the reload that renews it.
    /// </summary>
    [Fact]
    public async Task The_certificates_end_is_a_metric_and_a_near_one_is_warned_of()
    {
        var pki = Pki;
        pki.InitCa();
        ShortLived(pki, TimeSpan.FromDays(3));
        await using var recorded = new RecordedServer(_files);
        var server = recorded.Server;
        using var exporter = server.Metrics.Exporter();
        long Scraped() => long.Parse(exporter.Render().Split('\n').Single(l => l.StartsWith("isotun_tls_certificate_not_after_seconds ", StringComparison.Ordinal)).Split(' ')[1]);
        Assert.Equal(new DateTimeOffset(server.ServerCertificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(), Scraped());
        Assert.Contains(recorded.Recording.Lines, l => l.Text.Contains("server certificate") && l.Text.Contains("renew it and reload") && l.Text.Contains("in 3 days"));

        Renew(); // a year, as pki server issues
        Assert.StartsWith("tls.certificate: renewed", server.Reload()[1]);
        Assert.Equal(new DateTimeOffset(server.ServerCertificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(), Scraped());
        Assert.True(Scraped() > DateTimeOffset.UtcNow.AddDays(300).ToUnixTimeSeconds());
    }

    /// <summary>Writes pki/server.crt and .key: a server certificate from the PKI's CA that ends <paramref name="lifetime"/> from now.</summary>
    private void ShortLived(PkiDirectory pki, TimeSpan lifetime)
    {
        using var ca = X509Certificate2.CreateFromPemFile(pki.CaCertificatePath, pki.CaKeyPath);
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=server", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Parse("198.18.0.1"));
        request.CertificateExtensions.Add(names.Build());
        using var cert = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow + lifetime, [9, 8, 7, 6]);
        File.WriteAllText(_files.File("pki/server.crt"), cert.ExportCertificatePem());
        Isotun.Security.SecretFile.WriteAllText(_files.File("pki/server.key"), key.ExportPkcs8PrivateKeyPem(), overwrite: true);
    }

    /// <summary>A certificate's base64 body, on one line, as it appears in what s_client prints.</summary>
    private static string Body(X509Certificate2 certificate) => Convert.ToBase64String(certificate.RawData);

    private static string Flat(string pemText) => pemText.Replace("\n", "").Replace("\r", "");
}
