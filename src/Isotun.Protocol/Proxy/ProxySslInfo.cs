namespace Isotun.Protocol.Proxy;

/// <summary>
/// PP2_TYPE_SSL (0x20): the client flags, the 32-bit <c>verify</c> field (0 when a presented certificate was verified),
/// and the sub-TLVs PP2_SUBTYPE_SSL_VERSION (0x21), _CN (0x22), _CIPHER (0x23).
/// </summary>
public sealed record ProxySslInfo(ProxyClientFlags Client, uint Verify, string? Version = null, string? CommonName = null, string? Cipher = null)
{
    /// <summary>A client certificate was presented, on this connection or in the TLS session it resumed, and the sender
    /// verified it.</summary>
    public bool CertificateVerified => CertificatePresented && Verify == 0;

    /// <summary>A client certificate was presented (verified or not).</summary>
    public bool CertificatePresented => (Client & (ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession)) != 0;
}
