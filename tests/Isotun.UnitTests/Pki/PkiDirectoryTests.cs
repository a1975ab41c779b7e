using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Pki;

public class PkiDirectoryTests
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0644 = Mode0600 | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    [Fact]
    public void A_forced_reissue_whose_certificate_cannot_be_written_keeps_the_old_key()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.File("pki"));
        pki.InitCa();
        var alice = pki.IssueClient("acme", "alice");
        var oldKey = File.ReadAllBytes(alice.KeyPath);
        File.Delete(alice.CertificatePath);
        Directory.CreateDirectory(alice.CertificatePath); // the certificate cannot be written there
        Assert.Throws<PkiException>(() => pki.IssueClient("acme", "alice", force: true));
        Assert.Equal(oldKey, File.ReadAllBytes(alice.KeyPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(alice.KeyPath));
    }

    [Fact]
    public void InitCaWritesKey0600AndCaCertificate()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.File("pki"));
        Assert.False(pki.HasCa);

        pki.InitCa();

        Assert.True(pki.HasCa);
        Assert.Equal(Path.Combine(temp.Path, "pki", "ca.crt"), pki.CaCertificatePath);
        Assert.Equal(Path.Combine(temp.Path, "pki", "ca.key"), pki.CaKeyPath);
        Assert.Equal(Mode0600, File.GetUnixFileMode(pki.CaKeyPath));
        Assert.Equal(Mode0644, File.GetUnixFileMode(pki.CaCertificatePath));
        Assert.Contains("BEGIN PRIVATE KEY", File.ReadAllText(pki.CaKeyPath));

        using var ca = PemLoader.LoadCertificate(pki.CaCertificatePath);
        Assert.Equal("CN=Isotun CA", ca.Subject);
        Assert.Equal(ca.Subject, ca.Issuer);
        var constraints = ca.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(constraints.CertificateAuthority);
        Assert.True(constraints.HasPathLengthConstraint);
        Assert.Equal(0, constraints.PathLengthConstraint);
        Assert.True(constraints.Critical);
        var usage = ca.Extensions.OfType<X509KeyUsageExtension>().Single();
        Assert.Equal(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, usage.KeyUsages);
        Assert.True(usage.Critical);
        Assert.Single(ca.Extensions.OfType<X509SubjectKeyIdentifierExtension>());
        Assert.Equal("1.2.840.10045.2.1", ca.PublicKey.Oid.Value); // id-ecPublicKey
        Assert.True(ca.NotAfter > DateTime.UtcNow.AddYears(9));
    }

    [Fact]
    public void InitCaRefusesOverwriteWithoutForce()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa("First CA");
        var before = File.ReadAllText(pki.CaKeyPath);

        var ex = Assert.Throws<PkiException>(() => pki.InitCa("Second CA"));
        Assert.Equal(PkiError.Exists, ex.Error);
        Assert.Equal(before, File.ReadAllText(pki.CaKeyPath));

        pki.InitCa("Second CA", force: true);
        Assert.NotEqual(before, File.ReadAllText(pki.CaKeyPath));
        using var ca = PemLoader.LoadCertificate(pki.CaCertificatePath);
        Assert.Equal("CN=Second CA", ca.Subject);
    }

    [Fact]
    public void IssuingWithoutCaFails()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        Assert.Equal(PkiError.MissingCa, Assert.Throws<PkiException>(() => pki.IssueServer("vpn.example.com", [], [])).Error);
        Assert.Equal(PkiError.MissingCa, Assert.Throws<PkiException>(() => pki.IssueClient("acme", "alice")).Error);
    }

    [Fact]
    public void ServerCertificateChainsToCaWithSansAndServerAuth()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();

        var issued = pki.IssueServer(
            "vpn.example.com", [IPAddress.Parse("192.0.2.10"), IPAddress.Parse("2001:db8::1")], ["alt.example.com"]);

        Assert.Equal(temp.File("vpn.example.com.crt"), issued.CertificatePath);
        Assert.Equal(temp.File("vpn.example.com.key"), issued.KeyPath);
        Assert.Equal(Mode0600, File.GetUnixFileMode(issued.KeyPath));
        Assert.Equal(Mode0644, File.GetUnixFileMode(issued.CertificatePath));

        using var server = PemLoader.LoadCertificate(issued.CertificatePath);
        using var ca = PemLoader.LoadCertificate(pki.CaCertificatePath);
        AssertChains(server, ca);
        Assert.Equal("CN=vpn.example.com", server.Subject);

        var san = server.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal([IPAddress.Parse("192.0.2.10"), IPAddress.Parse("2001:db8::1")], san.EnumerateIPAddresses().ToArray());
        Assert.Equal(["vpn.example.com", "alt.example.com"], san.EnumerateDnsNames().ToArray());

        var eku = server.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();
        Assert.Equal(["1.3.6.1.5.5.7.3.1"], eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value!).ToArray());
        Assert.Equal(X509KeyUsageFlags.DigitalSignature, server.Extensions.OfType<X509KeyUsageExtension>().Single().KeyUsages);
        Assert.False(server.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.Single(server.Extensions.OfType<X509AuthorityKeyIdentifierExtension>());
        Assert.Single(server.Extensions.OfType<X509SubjectKeyIdentifierExtension>());
        Assert.True(server.NotAfter < DateTime.UtcNow.AddDays(826));
        Assert.True(server.NotAfter > DateTime.UtcNow.AddDays(824));
        Assert.Equal(issued.Pin, CertificatePin.Compute(server));
    }

    [Fact]
    public void ServerNamedByIpGetsIpSanAndSanitisedFileName()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();

        var issued = pki.IssueServer("fd00::1", [IPAddress.Parse("fd00::1")], []);

        Assert.Equal(temp.File("fd00__1.crt"), issued.CertificatePath);
        using var server = PemLoader.LoadCertificate(issued.CertificatePath);
        var san = server.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal([IPAddress.Parse("fd00::1")], san.EnumerateIPAddresses().ToArray());
        Assert.Empty(san.EnumerateDnsNames());
    }

    [Fact]
    public void IssueServerRefusesOverwriteAndBadNames()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var first = pki.IssueServer("server", [], []);

        Assert.Equal(PkiError.Exists, Assert.Throws<PkiException>(() => pki.IssueServer("server", [], [])).Error);
        var second = pki.IssueServer("server", [], [], force: true);
        Assert.NotEqual(first.Pin, second.Pin);

        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueServer("bad name/..", [], [])).Error);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueServer("ok", [], ["not a name"])).Error);
        // An IPv4 address written short is no name: "10.1" would have been 10.0.0.1.
        Assert.Contains("written short", Assert.Throws<PkiException>(() => pki.IssueServer("10.1", [], [])).Message);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueServer("1", [], [])).Error);
    }

    /// <summary>
    /// No name takes the CA's own files, even with --force; and --force replaces only a certificate of the same subject,
    /// where two names map to one file.
    /// </summary>
    [Fact]
    public void A_forced_issue_never_replaces_the_ca_or_another_subjects_certificate()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var caPin = CertificatePin.ComputeFromFile(pki.CaCertificatePath);
        Assert.Contains("CA's own files", Assert.Throws<PkiException>(() => pki.IssueServer("ca", [], [], force: true)).Message);
        Assert.Equal(caPin, CertificatePin.ComputeFromFile(pki.CaCertificatePath));

        var first = pki.IssueClient("acme-eu", "alice");
        var clash = Assert.Throws<PkiException>(() => pki.IssueClient("acme", "eu-alice", force: true));
        Assert.Contains("not of", clash.Message);
        Assert.Equal(first.Pin, CertificatePin.ComputeFromFile(first.CertificatePath));
        Assert.NotEqual(first.Pin, pki.IssueClient("acme-eu", "alice", force: true).Pin); // the same subject: renewed
    }

    [Fact]
    public void ClientCertificateCarriesTenantOuAndUserUid()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();

        var issued = pki.IssueClient("acme", "alice@example.com");

        Assert.Equal(temp.File("acme-alice_example.com.crt"), issued.CertificatePath);
        Assert.Equal(temp.File("acme-alice_example.com.key"), issued.KeyPath);
        Assert.Equal(Mode0600, File.GetUnixFileMode(issued.KeyPath));

        using var client = PemLoader.LoadCertificate(issued.CertificatePath);
        using var ca = PemLoader.LoadCertificate(pki.CaCertificatePath);
        AssertChains(client, ca);
        Assert.Equal(["acme"], CertificateIdentity.OrganizationalUnits(client));
        Assert.Equal("alice@example.com", CertificateIdentity.UserId(client));
        Assert.Equal("alice@example.com", client.GetNameInfo(X509NameType.SimpleName, forIssuer: false));

        var eku = client.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();
        Assert.Equal(["1.3.6.1.5.5.7.3.2"], eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value!).ToArray());
        Assert.Empty(client.Extensions.OfType<X509SubjectAlternativeNameExtension>());
    }

    [Fact]
    public void IssueClientRejectsBadTenantAndUser()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueClient("Acme", "alice")).Error);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueClient("acme", "../alice")).Error);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.IssueClient("-acme", "alice")).Error);
    }

    [Fact]
    public void EnsureServerCreatesOnceAndNeverOverwrites()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.File("pki"));

        var first = pki.EnsureServer("server", [IPAddress.Loopback]);
        Assert.True(pki.HasCa);
        Assert.Equal(Path.Combine(temp.Path, "pki", "server.crt"), first.CertificatePath);
        var keyBefore = File.ReadAllText(first.KeyPath);

        var second = pki.EnsureServer("server", [IPAddress.Loopback]);
        Assert.Equal(first, second);
        Assert.Equal(keyBefore, File.ReadAllText(second.KeyPath));

        File.Delete(first.KeyPath);
        Assert.Equal(PkiError.Exists, Assert.Throws<PkiException>(() => pki.EnsureServer("server", [])).Error);
    }

    [Fact]
    public void MismatchedCaKeyIsRejected()
    {
        using var temp = new TempDirectory();
        var a = new PkiDirectory(temp.File("a"));
        var b = new PkiDirectory(temp.File("b"));
        a.InitCa();
        b.InitCa();
        File.Copy(b.CaKeyPath, a.CaKeyPath, overwrite: true);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => a.IssueClient("acme", "alice")).Error);
    }

    internal static void AssertChains(X509Certificate2 leaf, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        var built = chain.Build(leaf);
        Assert.True(built, string.Join(", ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation}")));
        Assert.Equal(2, chain.ChainElements.Count);
        Assert.Equal(ca.Thumbprint, chain.ChainElements[1].Certificate.Thumbprint);
    }
}
