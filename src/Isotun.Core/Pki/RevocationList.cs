using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Isotun.Pki;

/// <summary>
/// An X.509 CRL (RFC 5280 §5) as Isotun uses it: the set of revoked serial numbers, read from a PEM or DER file the
/// operator configured (<c>client-crl</c>), and written by <c>isotun pki revoke</c> with the CA's own key. The file is
/// configuration, so its signature is not what makes it trusted; the parse is strict and bounded all the same.
/// </summary>
public sealed class RevocationList
{
    public const int MaxBytes = 16 * 1024 * 1024;

    private readonly HashSet<string> _serials;
    private readonly HashSet<ulong> _stamps;

    private RevocationList(HashSet<string> serials, DateTimeOffset? nextUpdate = null)
    {
        _serials = serials;
        NextUpdate = nextUpdate;
        _stamps = serials.Select(Security.CredentialStamp.ForCertificate).ToHashSet();
    }

    /// <summary>Whether the certificate a cookie's credential stamp names is revoked (<see cref="Security.CredentialStamp"/>).</summary>
    public bool IsRevokedStamp(ulong stamp) => _stamps.Contains(stamp);

    public static RevocationList Empty { get; } = new([]);

    public int Count => _serials.Count;

    /// <summary>Whether a certificate with this serial number (as <see cref="X509Certificate2.SerialNumber"/> gives it, hex) is revoked.</summary>
    public bool IsRevoked(string serialHex) => _serials.Contains(Normalize(serialHex));

    public IReadOnlyCollection<string> Serials => _serials;

    /// <summary>
    /// When the CA said it would publish the next list (of several, the earliest); null when it did not say. A list
    /// past it still holds what it lists, but its CA may have revoked more since.
    /// </summary>
    public DateTimeOffset? NextUpdate { get; }

    /// <summary>Whether the list is past its next update at <paramref name="now"/>.</summary>
    public bool IsStale(DateTimeOffset now) => NextUpdate is { } next && next < now;

    /// <exception cref="PkiException">The file is missing, too large, or not a CRL.</exception>
    public static RevocationList Load(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new PkiException(PkiError.BadInput, $"{path}: CRL file not found");
            if (info.Length > MaxBytes) throw new PkiException(PkiError.BadInput, $"{path}: larger than {MaxBytes >> 20} MiB");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PkiException(PkiError.Io, $"{path}: {e.Message}");
        }
        // A PEM file may hold several CRLs (one per CA of a tenant whose client-ca holds several, concatenated): every
        // one is read, and a certificate any of them revokes is revoked.
        var serials = new HashSet<string>(StringComparer.Ordinal);
        DateTimeOffset? nextUpdate = null;
        List<byte[]> blocks;
        try
        {
            blocks = DerBlocks(bytes);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            // A PEM block cut short or with a damaged body: the same refusal as any other malformed CRL.
            blocks = [[]];
        }
        for (int i = 0; i < blocks.Count; i++)
        {
            if (!TryParse(blocks[i], out var one))
                throw new PkiException(PkiError.BadInput, blocks.Count == 1 ? $"{path}: not an X.509 CRL (PEM or DER)" : $"{path}: CRL {i + 1} of {blocks.Count} is not an X.509 CRL");
            serials.UnionWith(one!._serials);
            if (one.NextUpdate is { } next && (nextUpdate is null || next < nextUpdate)) nextUpdate = next;
        }
        return new RevocationList(serials, nextUpdate);
    }

    /// <summary>Reads the revoked serials of a DER CRL; false on anything malformed. Never throws.</summary>
    public static bool TryParse(ReadOnlySpan<byte> der, out RevocationList? list)
    {
        list = null;
        try
        {
            var reader = new AsnReader(der.ToArray(), AsnEncodingRules.DER);
            var certList = reader.ReadSequence();
            reader.ThrowIfNotEmpty(); // one CRL, and nothing after it
            var tbs = certList.ReadSequence();
            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer)) tbs.ReadInteger(); // version v2
            tbs.ReadSequence(); // signature algorithm
            tbs.ReadSequence(); // issuer
            ReadTime(tbs); // thisUpdate
            var serials = new HashSet<string>(StringComparer.Ordinal);
            DateTimeOffset? nextUpdate = tbs.HasData && IsTime(tbs.PeekTag()) ? ReadTime(tbs) : null;
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                var revoked = tbs.ReadSequence();
                while (revoked.HasData)
                {
                    var entry = revoked.ReadSequence();
                    serials.Add(Normalize(Convert.ToHexString(entry.ReadIntegerBytes().Span)));
                }
            }
            list = new RevocationList(serials, nextUpdate);
            return true;
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException or ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// <c>isotun pki revoke</c>: adds <paramref name="certificate"/> to the CRL at <paramref name="crlPath"/> (made when
    /// missing), signed by the CA, with the next CRL number. Returns how many certificates the list now holds.
    /// </summary>
    public static int Revoke(string crlPath, X509Certificate2 certificate, X509Certificate2 ca, ECDsa caKey)
    {
        CertificateRevocationListBuilder builder;
        BigInteger number = 0;
        if (File.Exists(crlPath))
        {
            // This CA's own list: a file that also holds other CAs' lists (a tenant's client-crl may) is not rewritten
            // with this one alone.
            var blocks = DerBlocks(File.ReadAllBytes(crlPath));
            if (blocks.Count > 1) throw new FormatException($"it holds {blocks.Count} CRLs; `isotun pki revoke` keeps one CA's list in a file of its own");
            builder = CertificateRevocationListBuilder.Load(blocks[0], out number);
        }
        else builder = new CertificateRevocationListBuilder();
        builder.AddEntry(certificate, DateTimeOffset.UtcNow, X509RevocationReason.Unspecified);
        using var signer = ca.CopyWithPrivateKey(caKey);
        var now = DateTimeOffset.UtcNow;
        var der = builder.Build(signer, number + 1, now.AddYears(10), HashAlgorithmName.SHA256, thisUpdate: now.AddMinutes(-5));
        var pem = PemEncoding.WriteString("X509 CRL", der);
        // Through a temporary file of its own and a rename (synced): a reader sees the old list or the new one whole.
        Security.AtomicFile.Write(crlPath, Encoding.ASCII.GetBytes(pem + "\n"), overwrite: true, Security.AtomicFile.PublicMode);
        return TryParse(der, out var list) ? list!.Count : 0;
    }

    /// <summary>Every "X509 CRL" PEM block's DER, in order; the whole input when it holds none (a DER file).</summary>
    private static List<byte[]> DerBlocks(byte[] bytes)
    {
        var text = Encoding.ASCII.GetString(bytes);
        const string Begin = "-----BEGIN X509 CRL-----";
        var blocks = new List<byte[]>();
        for (int at = text.IndexOf(Begin, StringComparison.Ordinal); at >= 0; at = text.IndexOf(Begin, at, StringComparison.Ordinal))
        {
            var fields = PemEncoding.Find(text.AsSpan(at));
            blocks.Add(Convert.FromBase64String(text.Substring(at + fields.Base64Data.Start.Value, fields.Base64Data.End.Value - fields.Base64Data.Start.Value)));
            at += fields.Location.End.Value;
        }
        return blocks.Count > 0 ? blocks : [bytes];
    }

    private static bool IsTime(Asn1Tag tag) => tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();

    private static string Normalize(string hex) => Security.CredentialStamp.Normalize(hex);
}
