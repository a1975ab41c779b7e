using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>
/// Certificate pins in the forms <c>openconnect --servercert</c> accepts: <c>pin-sha256:&lt;base64 SHA-256 of the SPKI&gt;</c>
/// and <c>sha256:&lt;hex SHA-256 of the whole DER certificate&gt;</c>.
/// </summary>
public static class CertificatePin
{
    public const string PinPrefix = "pin-sha256:";
    public const string CertificateHashPrefix = "sha256:";

    public static string Compute(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return PinPrefix + Convert.ToBase64String(SpkiHash(certificate));
    }

    /// <exception cref="PkiException">The file is missing or holds no certificate.</exception>
    public static string ComputeFromFile(string pemPath)
    {
        using var certificate = PemLoader.LoadCertificate(pemPath);
        return Compute(certificate);
    }

    /// <summary>True when <paramref name="pin"/> names this certificate. Never throws on a malformed pin.</summary>
    public static bool Matches(X509Certificate2 certificate, string pin)
    {
        if (certificate is null || string.IsNullOrWhiteSpace(pin))
        {
            return false;
        }

        var text = pin.Trim();
        if (text.StartsWith(PinPrefix, StringComparison.OrdinalIgnoreCase))
        {
            var encoded = text[PinPrefix.Length..];
            Span<byte> expected = stackalloc byte[64];
            if (!Convert.TryFromBase64String(encoded, expected, out var written) || written != SHA256.HashSizeInBytes)
            {
                return false;
            }

            return CryptographicOperations.FixedTimeEquals(SpkiHash(certificate), expected[..written]);
        }

        if (text.StartsWith(CertificateHashPrefix, StringComparison.OrdinalIgnoreCase))
        {
            // Tolerates the colon-separated form some tools print.
            var hex = text[CertificateHashPrefix.Length..].Replace(":", string.Empty, StringComparison.Ordinal);
            if (hex.Length != SHA256.HashSizeInBytes * 2)
            {
                return false;
            }

            byte[] expected;
            try
            {
                expected = Convert.FromHexString(hex);
            }
            catch (FormatException)
            {
                return false;
            }

            return CryptographicOperations.FixedTimeEquals(SHA256.HashData(certificate.RawData), expected);
        }

        return false;
    }

    private static byte[] SpkiHash(X509Certificate2 certificate) =>
        SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo());
}
