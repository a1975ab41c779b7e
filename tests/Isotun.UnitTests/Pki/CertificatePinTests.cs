using System.Security.Cryptography;
using Isotun.Pki;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Pki;

public class CertificatePinTests
{
    [Fact]
    public void PinIsSha256OfSubjectPublicKeyInfo()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var issued = pki.IssueServer("server", [], []);

        using var certificate = PemLoader.LoadCertificate(issued.CertificatePath);
        var expected = "pin-sha256:" + Convert.ToBase64String(SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo()));

        Assert.Equal(expected, issued.Pin);
        Assert.Equal(expected, CertificatePin.Compute(certificate));
        Assert.Equal(expected, CertificatePin.ComputeFromFile(issued.CertificatePath));
    }

    [Fact]
    public void MatchesAcceptsBothForms()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var issued = pki.IssueServer("server", [], []);
        using var certificate = PemLoader.LoadCertificate(issued.CertificatePath);
        var hex = Convert.ToHexString(SHA256.HashData(certificate.RawData));

        Assert.True(CertificatePin.Matches(certificate, issued.Pin));
        Assert.True(CertificatePin.Matches(certificate, "sha256:" + hex.ToLowerInvariant()));
        Assert.True(CertificatePin.Matches(certificate, "SHA256:" + hex));
        Assert.False(CertificatePin.Matches(certificate, "sha256:" + new string('0', 64)));
        Assert.False(CertificatePin.Matches(certificate, "pin-sha256:" + Convert.ToBase64String(new byte[32])));
    }

    [Fact]
    public void PinOfAnotherCertificateDoesNotMatch()
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        var one = pki.IssueServer("one", [], []);
        var two = pki.IssueServer("two", [], []);
        using var certificate = PemLoader.LoadCertificate(one.CertificatePath);
        Assert.False(CertificatePin.Matches(certificate, two.Pin));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("pin-sha256:")]
    [InlineData("pin-sha256:!!!")]
    [InlineData("pin-sha256:AAAA")]
    [InlineData("sha256:")]
    [InlineData("sha256:zz")]
    [InlineData("sha256:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")]
    [InlineData("sha1:0000")]
    [InlineData("garbage")]
    public void MalformedPinsDoNotMatchOrThrow(string pin)
    {
        using var temp = new TempDirectory();
        var pki = new PkiDirectory(temp.Path);
        pki.InitCa();
        using var certificate = PemLoader.LoadCertificate(pki.CaCertificatePath);
        Assert.False(CertificatePin.Matches(certificate, pin));
    }

    [Fact]
    public void ComputeFromMissingFileIsAnIoError()
    {
        using var temp = new TempDirectory();
        Assert.Equal(PkiError.Io, Assert.Throws<PkiException>(() => CertificatePin.ComputeFromFile(temp.File("none.crt"))).Error);
    }
}
