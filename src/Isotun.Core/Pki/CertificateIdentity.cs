using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>
/// Reads the identity fields certificate authentication uses from a client certificate subject, the way ocserv's
/// <c>cert-user-oid</c> (UID) and <c>cert-group-oid</c> (OU) read them: in encoding order, first UID wins.
/// </summary>
public static class CertificateIdentity
{
    public const string UserIdOid = "0.9.2342.19200300.100.1.1";
    public const string OrganizationalUnitOid = "2.5.4.11";

    /// <summary>Every OU value of the subject, in encoding order.</summary>
    public static IReadOnlyList<string> OrganizationalUnits(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var units = new List<string>();
        foreach (var (oid, value) in Attributes(certificate.SubjectName))
        {
            if (oid == OrganizationalUnitOid)
            {
                units.Add(value);
            }
        }

        return units;
    }

    /// <summary>The first UID of the subject, or null.</summary>
    public static string? UserId(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        foreach (var (oid, value) in Attributes(certificate.SubjectName))
        {
            if (oid == UserIdOid)
            {
                return value;
            }
        }

        return null;
    }

    private static List<(string Oid, string Value)> Attributes(X500DistinguishedName name)
    {
        var attributes = new List<(string, string)>();
        try
        {
            foreach (var rdn in name.EnumerateRelativeDistinguishedNames(reversed: false))
            {
                if (!rdn.HasMultipleElements)
                {
                    var value = rdn.GetSingleElementValue();
                    if (value is not null)
                    {
                        attributes.Add((rdn.GetSingleElementType().Value ?? string.Empty, value));
                    }

                    continue;
                }

                ReadMultiValued(rdn.RawData, attributes);
            }
        }
        catch (CryptographicException)
        {
            // A subject we cannot decode carries no identity.
            attributes.Clear();
        }
        catch (AsnContentException)
        {
            attributes.Clear();
        }

        return attributes;
    }

    // RelativeDistinguishedName ::= SET OF AttributeTypeAndValue; AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }
    private static void ReadMultiValued(ReadOnlyMemory<byte> rdn, List<(string, string)> attributes)
    {
        var set = new AsnReader(rdn, AsnEncodingRules.DER).ReadSetOf(skipSortOrderValidation: true);
        while (set.HasData)
        {
            var pair = set.ReadSequence();
            var oid = pair.ReadObjectIdentifier();
            var tag = pair.PeekTag();
            if (tag.TagClass == TagClass.Universal && IsString((UniversalTagNumber)tag.TagValue))
            {
                attributes.Add((oid, pair.ReadCharacterString((UniversalTagNumber)tag.TagValue)));
            }
            else
            {
                pair.ReadEncodedValue();
            }
        }
    }

    private static bool IsString(UniversalTagNumber tag) => tag is UniversalTagNumber.UTF8String
        or UniversalTagNumber.PrintableString or UniversalTagNumber.IA5String or UniversalTagNumber.BMPString
        or UniversalTagNumber.UniversalString or UniversalTagNumber.VisibleString;
}
