using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Security;

/// <summary>
/// The credential a session's cookie carries, as 64 bits: 0 for none, a fingerprint of the stored password hash for a
/// password login, or (with the top bit set) of the certificate's serial number for a certificate login. When the user
/// is removed, given a new password, or their certificate is revoked, the cookie no longer matches. It reveals nothing
/// of the password.
/// </summary>
public static class CredentialStamp
{
    private const ulong CertificateBit = 1UL << 63;

    public static ulong ForPassword(string encodedHash) => Fingerprint("password:" + encodedHash) & ~CertificateBit;

    public static ulong ForCertificate(string serialHex) => Fingerprint("certificate:" + Normalize(serialHex)) | CertificateBit;

    public static bool IsCertificate(ulong stamp) => (stamp & CertificateBit) != 0;

    /// <summary>Upper-case hex without leading zero bytes.</summary>
    public static string Normalize(string serialHex)
    {
        var hex = serialHex.ToUpperInvariant();
        while (hex.Length > 2 && hex.StartsWith("00", StringComparison.Ordinal)) hex = hex[2..];
        return hex;
    }

    private static ulong Fingerprint(string text)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(text), digest);
        ulong stamp = BinaryPrimitives.ReadUInt64BigEndian(digest);
        return stamp == 0 ? 1 : stamp;
    }
}
