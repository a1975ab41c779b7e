using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>
/// The one check of a client certificate's chain, for the server (against the chosen tenant's CA) and the gateway
/// (against a terminating route's CA): it must chain to one of the given CAs alone (no system roots) and allow client
/// authentication. Revocation is not checked here. Every chain is built offline: a certificate names, in its Authority
/// Information Access, where its issuer may be downloaded from, and a client's certificate is the peer's to write, so
/// following it would have the server fetch from any address the peer likes and wait up to 15 s for it.
/// </summary>
public static class ClientCertificateCheck
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2Collection cas)
    {
        if (cas.Count == 0) return false;
        using var chain = OfflineChain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(cas);
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        return Builds(chain, certificate);
    }

    /// <summary>
    /// The chain policy for a TLS server's own look at a client certificate during the handshake (SslStream's, before
    /// its validation callback): offline, no revocation check. The runtime downloads missing issuers there unless told
    /// not to.
    /// </summary>
    public static X509ChainPolicy HandshakePolicy() =>
        new() { RevocationMode = X509RevocationMode.NoCheck, DisableCertificateDownloads = true };

    private static X509Chain OfflineChain()
    {
        var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        return chain;
    }

    /// <summary>Whether <paramref name="certificate"/> carries <paramref name="ca"/>'s signature.</summary>
    public static bool IssuedBy(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = OfflineChain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        return Builds(chain, certificate);
    }

    /// <summary>Whether the chain builds; a certificate the runtime cannot parse (its extensions are the peer's to
    /// write, and the runtime reads them as DER where OpenSSL took BER) does not.</summary>
    private static bool Builds(X509Chain chain, X509Certificate2 certificate)
    {
        try
        {
            return chain.Build(certificate);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }
}
