using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;

namespace Isotun.Client;

/// <summary>
/// The client's TLS files in the forms a handshake uses: the CA bundle that vouches for the server and the client
/// certificate with its key. They are read once and again only when a file's modification time changes, so a
/// reconnect (or <c>lab load</c>'s thousands of connections) does not repeat the work of loading them: the key's
/// PKCS#12 round trip and the certificate's chain cost more CPU than the TLS handshake itself.
/// </summary>
public sealed class ClientTlsMaterial
{
    private static readonly Lock Gate = new();
    // One entry per set of paths; a changed file replaces its entry, so this grows only with distinct paths.
    private static readonly Dictionary<(string? Cert, string? Key, string? Ca), (Stamp Stamp, ClientTlsMaterial Material)> Loaded = [];

    private ClientTlsMaterial(X509Certificate2Collection? authorities, SslStreamCertificateContext? identity)
    {
        Authorities = authorities;
        Identity = identity;
    }

    /// <summary>The CA bundle (<see cref="ClientOptions.CaFile"/>), or null.</summary>
    public X509Certificate2Collection? Authorities { get; }

    /// <summary>The client certificate with its key (<see cref="ClientOptions.CertificateFile"/>), or null.</summary>
    public SslStreamCertificateContext? Identity { get; }

    /// <summary>The material for <paramref name="o"/>'s files.</summary>
    /// <exception cref="PkiException">A file is missing, unreadable or not what it should be.</exception>
    public static ClientTlsMaterial For(ClientOptions o)
    {
        string? keyFile = o.CertificateFile is null ? null : o.KeyFile ?? o.CertificateFile;
        var paths = (o.CertificateFile, keyFile, o.CaFile);
        var stamp = new Stamp(Modified(o.CertificateFile), Modified(keyFile), Modified(o.CaFile));
        lock (Gate)
            if (Loaded.TryGetValue(paths, out var entry) && entry.Stamp == stamp)
                return entry.Material;
        var material = new ClientTlsMaterial(
            o.CaFile is null ? null : PemLoader.LoadBundle(o.CaFile),
            o.CertificateFile is null ? null
                : SslStreamCertificateContext.Create(PemLoader.LoadCertificateWithKey(o.CertificateFile, keyFile!), additionalCertificates: null, offline: true));
        lock (Gate) Loaded[paths] = (stamp, material);
        return material;
    }

    private static DateTime Modified(string? path) => path is null ? default : File.GetLastWriteTimeUtc(path);

    private readonly record struct Stamp(DateTime Cert, DateTime Key, DateTime Ca);
}
