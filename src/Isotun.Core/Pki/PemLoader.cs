using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>Loads PEM certificates and keys into forms <see cref="System.Net.Security.SslStream"/> can use.</summary>
public static class PemLoader
{
    private const string PemCertificateHeader = "-----BEGIN CERTIFICATE-----";

    /// <summary>Certificate with its private key, re-imported through PKCS#12 so the key is a persisted, usable one.</summary>
    /// <exception cref="PkiException">Files missing (<see cref="PkiError.Io"/>) or not a matching certificate and key (<see cref="PkiError.BadInput"/>).</exception>
    public static X509Certificate2 LoadCertificateWithKey(string certPath, string keyPath)
    {
        RequireFile(certPath);
        RequireFile(keyPath);
        try
        {
            using var ephemeral = X509Certificate2.CreateFromPemFile(certPath, keyPath);
            return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
        }
        catch (CryptographicException ex)
        {
            throw new PkiException(PkiError.BadInput, $"{certPath} / {keyPath}: not a matching PEM certificate and private key ({ex.Message})");
        }
        catch (ArgumentException ex)
        {
            throw new PkiException(PkiError.BadInput, $"{certPath} / {keyPath}: {ex.Message}");
        }
        catch (IOException ex)
        {
            throw new PkiException(PkiError.Io, $"{certPath} / {keyPath}: {ex.Message}");
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new PkiException(PkiError.Io, $"{certPath} / {keyPath}: {ex.Message}");
        }
    }

    /// <summary>
    /// What <see cref="System.Net.Security.SslStream"/> serves <paramref name="certificate"/> (loaded from
    /// <paramref name="certPath"/>) with: the certificates that follow it in its file, the intermediates of a CA's
    /// full-chain file, go out in the handshake too, so that a client trusting only the root can build the chain. A
    /// file of one certificate serves that one alone (and whatever of its chain the system's store holds).
    /// </summary>
    /// <exception cref="PkiException">The file cannot be read again, or a certificate after the first is malformed.</exception>
    public static System.Net.Security.SslStreamCertificateContext ServerContext(X509Certificate2 certificate, string certPath)
    {
        var chain = LoadBundle(certPath);
        for (int i = chain.Count - 1; i >= 0; i--)
            if (chain[i].RawDataMemory.Span.SequenceEqual(certificate.RawDataMemory.Span)) chain.RemoveAt(i);
        // Offline: the chain is built from the file and the local store, never fetched from a URL in a certificate.
        return System.Net.Security.SslStreamCertificateContext.Create(certificate, chain, offline: true);
    }

    /// <summary>The first certificate of a PEM file (a DER file is accepted too).</summary>
    /// <exception cref="PkiException">File missing or unreadable (<see cref="PkiError.Io"/>) or no certificate in it (<see cref="PkiError.BadInput"/>).</exception>
    public static X509Certificate2 LoadCertificate(string certPath)
    {
        var bytes = ReadFile(certPath);
        try
        {
            var text = System.Text.Encoding.ASCII.GetString(bytes);
            return text.Contains(PemCertificateHeader, StringComparison.Ordinal)
                ? X509Certificate2.CreateFromPem(text)
                : X509CertificateLoader.LoadCertificate(bytes);
        }
        catch (CryptographicException ex)
        {
            throw new PkiException(PkiError.BadInput, $"{certPath}: no certificate found ({ex.Message})");
        }
    }

    /// <summary>Every certificate in a PEM bundle, in file order.</summary>
    /// <exception cref="PkiException">File missing or unreadable (<see cref="PkiError.Io"/>) or no certificate in it (<see cref="PkiError.BadInput"/>).</exception>
    public static X509Certificate2Collection LoadBundle(string pemPath)
    {
        var bytes = ReadFile(pemPath);
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(System.Text.Encoding.ASCII.GetString(bytes));
        }
        catch (CryptographicException ex)
        {
            throw new PkiException(PkiError.BadInput, $"{pemPath}: malformed PEM bundle ({ex.Message})");
        }

        if (collection.Count == 0)
        {
            throw new PkiException(PkiError.BadInput, $"{pemPath}: no certificate found");
        }

        return collection;
    }

    private static void RequireFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new PkiException(PkiError.Io, $"{path}: file not found");
        }
    }

    private static byte[] ReadFile(string path)
    {
        RequireFile(path);
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (IOException ex)
        {
            throw new PkiException(PkiError.Io, $"{path}: {ex.Message}");
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new PkiException(PkiError.Io, $"{path}: {ex.Message}");
        }
    }
}
