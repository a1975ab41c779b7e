using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;

namespace Isotun.UnitTests.Pki;

public class CertificateIdentityTests
{
    [Fact]
    public void ReadsEveryOuInEncodingOrderAndFirstUid()
    {
        using var certificate = SelfSigned(Encode(
            (CertificateIdentity.OrganizationalUnitOid, "first"),
            (CertificateIdentity.OrganizationalUnitOid, "second"),
            (CertificateIdentity.UserIdOid, "carol"),
            (CertificateIdentity.UserIdOid, "mallory"),
            ("2.5.4.3", "Carol")));

        Assert.Equal(["first", "second"], CertificateIdentity.OrganizationalUnits(certificate));
        Assert.Equal("carol", CertificateIdentity.UserId(certificate));
    }

    [Fact]
    public void MissingFieldsGiveEmptyAndNull()
    {
        using var certificate = SelfSigned(new X500DistinguishedName("CN=nobody"));
        Assert.Empty(CertificateIdentity.OrganizationalUnits(certificate));
        Assert.Null(CertificateIdentity.UserId(certificate));
    }

    [Fact]
    public void ReadsMultiValuedRdn()
    {
        // One RDN holding both OU and UID: SET { SEQ { OU, "acme" }, SEQ { UID, "dave" } }.
        var writer = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            using (writer.PushSetOf())
            {
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(CertificateIdentity.OrganizationalUnitOid);
                    writer.WriteCharacterString(System.Formats.Asn1.UniversalTagNumber.UTF8String, "acme");
                }

                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(CertificateIdentity.UserIdOid);
                    writer.WriteCharacterString(System.Formats.Asn1.UniversalTagNumber.UTF8String, "dave");
                }
            }
        }

        using var certificate = SelfSigned(new X500DistinguishedName(writer.Encode()));
        Assert.Equal(["acme"], CertificateIdentity.OrganizationalUnits(certificate));
        Assert.Equal("dave", CertificateIdentity.UserId(certificate));
    }

    /// <summary>A Name with one single-valued RDN per attribute, in exactly this encoding order.</summary>
    private static X500DistinguishedName Encode(params (string Oid, string Value)[] attributes)
    {
        var writer = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            foreach (var (oid, value) in attributes)
            {
                using (writer.PushSetOf())
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(oid);
                    writer.WriteCharacterString(System.Formats.Asn1.UniversalTagNumber.UTF8String, value);
                }
            }
        }

        return new X500DistinguishedName(writer.Encode());
    }

    private static X509Certificate2 SelfSigned(X500DistinguishedName subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
