using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>
/// The one check of a client certificate's chain, for the server (against the chosen tenant's CA) and the gateway
/// (against a terminating route's CA): it must chain to one of the given CAs alone (no system roots) and allow client
/// authentication. Revocation is not checked here.
/// </summary>
public static class ClientCertificateCheck
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2Collection cas)
    {
        if (cas.Count == 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(cas);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        return chain.Build(certificate);
    }

    /// <summary>Whether <paramref name="certificate"/> carries <paramref name="ca"/>'s signature.</summary>
    public static bool IssuedBy(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        return chain.Build(certificate);
    }
}
