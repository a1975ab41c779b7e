using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;

namespace Isotun.State.Cluster;

/// <summary>
/// How an <see cref="EtcdKeyValueStore"/> reaches etcd over TLS: the CAs that may sign etcd's server certificate (the
/// only roots trusted, not the system's), and the client certificate with its private key that etcd's
/// <c>--client-cert-auth</c> asks for (or null). The store that is given it owns it.
/// </summary>
public sealed class EtcdTls(X509Certificate2Collection trustedCas, X509Certificate2? clientCertificate) : IDisposable
{
    public X509Certificate2Collection TrustedCas { get; } = trustedCas.Count > 0 ? trustedCas : throw new ArgumentException("at least one CA", nameof(trustedCas));

    public X509Certificate2? ClientCertificate { get; } = clientCertificate;

    /// <summary>Reads a PEM CA bundle and, when given, a PEM client certificate and its key.</summary>
    /// <exception cref="PkiException">A file is missing, unreadable or not what it should be.</exception>
    public static EtcdTls Load(string caFile, string? certificateFile, string? keyFile)
    {
        var cas = PemLoader.LoadBundle(caFile);
        try
        {
            return new EtcdTls(cas, certificateFile is null ? null : PemLoader.LoadCertificateWithKey(certificateFile, keyFile ?? certificateFile));
        }
        catch
        {
            Dispose(cas);
            throw;
        }
    }

    public void Dispose()
    {
        Dispose(TrustedCas);
        ClientCertificate?.Dispose();
    }

    private static void Dispose(X509Certificate2Collection certificates)
    {
        foreach (var c in certificates) c.Dispose();
    }
}
