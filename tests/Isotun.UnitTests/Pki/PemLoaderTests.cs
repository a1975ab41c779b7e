using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Pki;

public class PemLoaderTests
{
    [Fact]
    public void LoadCertificateWithKeyHasUsablePrivateKey()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var issued = pki.IssueServer("server", [], []);

        using var certificate = PemLoader.LoadCertificateWithKey(issued.CertificatePath, issued.KeyPath);

        Assert.True(certificate.HasPrivateKey);
        using var key = certificate.GetECDsaPrivateKey();
        Assert.NotNull(key);
        var signature = key.SignData("hello"u8.ToArray(), System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var publicKey = certificate.GetECDsaPublicKey();
        Assert.True(publicKey!.VerifyData("hello"u8.ToArray(), signature, System.Security.Cryptography.HashAlgorithmName.SHA256));
    }

    [Fact]
    public void MismatchedKeyIsBadInput()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var one = pki.IssueServer("one", [], []);
        var two = pki.IssueServer("two", [], []);
        var ex = Assert.Throws<PkiException>(() => PemLoader.LoadCertificateWithKey(one.CertificatePath, two.KeyPath));
        Assert.Equal(PkiError.BadInput, ex.Error);
        Assert.DoesNotContain("PRIVATE KEY", ex.Message);
    }

    [Fact]
    public void LoadBundleReadsEveryCertificate()
    {
        using var temp = new TempDirectory();
        var a = new PkiDirectory(temp.File("a"));
        var b = new PkiDirectory(temp.File("b"));
        a.InitCa("CA A");
        b.InitCa("CA B");
        var bundle = temp.File("bundle.pem");
        File.WriteAllText(bundle, File.ReadAllText(a.CaCertificatePath) + File.ReadAllText(b.CaCertificatePath));

        var collection = PemLoader.LoadBundle(bundle);
        try
        {
            Assert.Equal(["CN=CA A", "CN=CA B"], collection.Select(c => c.Subject).ToArray());
        }
        finally
        {
            foreach (var certificate in collection)
            {
                certificate.Dispose();
            }
        }
    }

    [Fact]
    public void NonPemFilesAreBadInput()
    {
        using var temp = new TempDirectory();
        var path = temp.File("junk.pem");
        File.WriteAllText(path, "not a certificate");
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => PemLoader.LoadBundle(path)).Error);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => PemLoader.LoadCertificate(path)).Error);
        Assert.Equal(PkiError.Io, Assert.Throws<PkiException>(() => PemLoader.LoadCertificate(temp.File("missing.pem"))).Error);
    }

    [Fact]
    public void LoadCertificateAcceptsDer()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        using var pem = PemLoader.LoadCertificate(pki.CaCertificatePath);
        var der = temp.File("ca.der");
        File.WriteAllBytes(der, pem.Export(X509ContentType.Cert));
        using var loaded = PemLoader.LoadCertificate(der);
        Assert.Equal(pem.Thumbprint, loaded.Thumbprint);
    }
}
