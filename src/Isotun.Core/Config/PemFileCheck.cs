using Isotun.Pki;

namespace Isotun.Config;

/// <summary>
/// Checks at load time that the PEM files a configuration names can be used, so that a bad file is reported with its
/// key path instead of failing the start (or a reload) later without one.
/// </summary>
internal static class PemFileCheck
{
    /// <summary>A CA bundle: the file exists and holds at least one certificate.</summary>
    public static void Bundle(ConfigWalker walker, string file, string path)
    {
        if (!File.Exists(file))
        {
            walker.Error(path, $"file not found: {file}");
            return;
        }

        try
        {
            using var bundle = new DisposableCollection(PemLoader.LoadBundle(file));
        }
        catch (PkiException ex)
        {
            walker.Error(path, ex.Message);
        }
    }

    /// <summary>
    /// A certificate and its private key: both exist, group and others cannot read or write the key (it is written
    /// 0600), and the two belong together.
    /// </summary>
    public static void CertificateAndKey(ConfigWalker walker, string certificate, string certificatePath, string key, string keyPath)
    {
        var before = walker.Errors.Count;
        if (!File.Exists(certificate)) walker.Error(certificatePath, $"file not found: {certificate}");
        if (!File.Exists(key)) walker.Error(keyPath, $"file not found: {key}");
        else if (Isotun.Security.SecretFile.OpenToOthers(key))
            walker.Error(keyPath, $"{key}: private key must not be readable by group or others (chmod 600)");
        if (walker.Errors.Count != before) return;
        try
        {
            using var loaded = PemLoader.LoadCertificateWithKey(certificate, key);
        }
        catch (PkiException ex)
        {
            walker.Error(certificatePath, ex.Message);
        }
    }
}
