using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Security;

namespace Isotun.Pki;

/// <summary>
/// A directory holding a small ECDSA P-256 CA (<c>ca.crt</c>, <c>ca.key</c>) and the server and client certificates it issued.
/// Private keys are PKCS#8 PEM, mode 0600; certificates are PEM, mode 0644. Nothing is overwritten unless asked.
/// </summary>
public sealed class PkiDirectory
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";
    private const int MaxCommonNameLength = 64;

    private static readonly TimeSpan CaValidity = TimeSpan.FromDays(3652);
    private static readonly TimeSpan LeafValidity = TimeSpan.FromDays(825);

    // Tolerates small clock differences between the issuing host and its peers.
    private static readonly TimeSpan Backdate = TimeSpan.FromMinutes(5);

    public PkiDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = Path.GetFullPath(directory);
        CaCertificatePath = Path.Combine(Directory, "ca.crt");
        CaKeyPath = Path.Combine(Directory, "ca.key");
    }

    public string Directory { get; }

    public string CaCertificatePath { get; }

    public string CaKeyPath { get; }

    public bool HasCa => File.Exists(CaCertificatePath) && File.Exists(CaKeyPath);

    /// <exception cref="PkiException">Files exist and not <paramref name="force"/>, bad name, or I/O failure.</exception>
    public void InitCa(string commonName = "Isotun CA", bool force = false)
    {
        if (string.IsNullOrWhiteSpace(commonName) || commonName.Length > MaxCommonNameLength)
        {
            throw new PkiException(PkiError.BadInput, $"CA common name must be 1-{MaxCommonNameLength} characters");
        }

        RefuseExisting(force, CaCertificatePath, CaKeyPath);

        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(commonName);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(
            certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));

        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now - Backdate, now + CaValidity);
        WritePair(CaCertificatePath, CaKeyPath, certificate, key, force);
    }

    /// <summary>An IP address written out in full (IPAddress.TryParse alone would read "10.1" as 10.0.0.1).</summary>
    public static bool TryParseIp(string text, out IPAddress address) => PkiNames.TryParseIp(text, out address);

    /// <exception cref="PkiException">No CA, bad name or address, files exist and not <paramref name="force"/>, or I/O failure.</exception>
    public IssuedCertificate IssueServer(string name, IReadOnlyList<IPAddress> ips, IReadOnlyList<string> dnsNames, bool force = false)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > MaxCommonNameLength)
        {
            throw new PkiException(PkiError.BadInput, $"server name must be 1-{MaxCommonNameLength} characters");
        }

        var san = new SubjectAlternativeNameBuilder();
        var seenNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var seenIps = new HashSet<IPAddress>();
        if (PkiNames.TryParseIp(name, out var nameAddress))
        {
            AddIp(nameAddress);
        }
        else if (PkiNames.IsShortIpv4(name))
        {
            throw new PkiException(PkiError.BadInput, $"server name '{name}' is an IPv4 address written short: write it out in full (four numbers)");
        }
        else if (PkiNames.IsValidHostName(name, allowWildcard: true))
        {
            AddDns(name);
        }
        else
        {
            throw new PkiException(PkiError.BadInput, $"server name '{name}' is neither a DNS name nor an IP address");
        }

        foreach (var ip in ips ?? [])
        {
            AddIp(ip ?? throw new PkiException(PkiError.BadInput, "null IP address"));
        }

        foreach (var dns in dnsNames ?? [])
        {
            if (!PkiNames.IsValidHostName(dns, allowWildcard: true))
            {
                throw new PkiException(PkiError.BadInput, $"'{dns}' is not a DNS name");
            }

            AddDns(dns);
        }

        var stem = PkiNames.FileStem(name);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddCommonName(name);
        return Issue(subject.Build(), ServerAuthOid, san.Build(), stem, force);

        void AddIp(IPAddress ip)
        {
            if (seenIps.Add(ip))
            {
                san.AddIpAddress(ip);
            }
        }

        void AddDns(string dns)
        {
            if (seenNames.Add(dns))
            {
                san.AddDnsName(dns);
            }
        }
    }

    /// <summary>Subject <c>OU=&lt;tenant&gt;, CN=&lt;user&gt;, UID=&lt;user&gt;</c>, EKU clientAuth.</summary>
    /// <exception cref="PkiException">No CA, bad tenant or user name, files exist and not <paramref name="force"/>, or I/O failure.</exception>
    public IssuedCertificate IssueClient(string tenant, string user, bool force = false)
    {
        if (!PkiNames.IsValidTenant(tenant))
        {
            throw new PkiException(PkiError.BadInput, "tenant names are 1-31 characters of a-z 0-9 -, starting with a letter or digit");
        }

        if (!PasswordFile.IsValidUserName(user))
        {
            throw new PkiException(PkiError.BadInput, "user names are 1-64 characters of A-Z a-z 0-9 . _ @ -");
        }

        // Encoded in this order; CertificateIdentity and ocserv read OU (cert-group-oid) and UID (cert-user-oid) by OID.
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationalUnitName(tenant);
        subject.AddCommonName(user);
        subject.Add(CertificateIdentity.UserIdOid, user);
        return Issue(subject.Build(), ClientAuthOid, subjectAlternativeName: null, PkiNames.FileStem($"{tenant}-{user}"), force);
    }

    /// <summary>The CA's revocation list, written by <see cref="Revoke"/>; give it to tenants as <c>client-crl</c>.</summary>
    public string CrlPath => Path.Combine(Directory, "ca.crl");

    /// <summary>Adds a certificate this CA issued to <see cref="CrlPath"/>; returns how many the list now holds.</summary>
    /// <exception cref="PkiException">No CA, the certificate is not this CA's, or I/O failure.</exception>
    public int Revoke(string certificatePath)
    {
        var (ca, key) = LoadCa();
        using (ca)
        using (key)
        {
            using var certificate = PemLoader.LoadCertificate(certificatePath);
            if (!ClientCertificateCheck.IssuedBy(certificate, ca))
                throw new PkiException(PkiError.BadInput, $"{certificatePath} was not issued by the CA in {Directory}");
            try
            {
                // One revocation at a time: each reads the list, adds to it and writes it back, and of two at once the
                // second would write the list without the first's certificate.
                using var turn = Linux.FileClaim.WaitForTurn(CrlPath + ".lock", TimeSpan.FromSeconds(30));
                return RevocationList.Revoke(CrlPath, certificate, ca, key);
            }
            catch (IOException e)
            {
                throw new PkiException(PkiError.Io, $"{CrlPath}: {e.Message}");
            }
            catch (Exception e) when (e is CryptographicException or FormatException or ArgumentException or System.Formats.Asn1.AsnContentException)
            {
                throw new PkiException(PkiError.BadInput, $"{CrlPath} is not a CRL this CA can add to ({e.Message}); move it aside to start a new list");
            }
        }
    }

    /// <summary>Creates the CA and <c>&lt;name&gt;.crt/.key</c> when missing and returns the server certificate; never overwrites.</summary>
    /// <exception cref="PkiException">Only one of a certificate/key pair exists, bad name, or I/O failure.</exception>
    public IssuedCertificate EnsureServer(string name, IReadOnlyList<IPAddress> ips)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new PkiException(PkiError.BadInput, "server name is empty");
        }

        var stem = PkiNames.FileStem(name);
        var certificatePath = Path.Combine(Directory, stem + ".crt");
        var keyPath = Path.Combine(Directory, stem + ".key");
        var hasCertificate = File.Exists(certificatePath);
        var hasKey = File.Exists(keyPath);
        if (hasCertificate && hasKey)
        {
            return new IssuedCertificate(certificatePath, keyPath, CertificatePin.ComputeFromFile(certificatePath));
        }

        if (hasCertificate || hasKey)
        {
            throw new PkiException(
                PkiError.Exists,
                $"{(hasCertificate ? certificatePath : keyPath)} exists but {(hasCertificate ? keyPath : certificatePath)} does not; remove it or restore the pair");
        }

        if (!HasCa)
        {
            InitCa();
        }

        return IssueServer(name, ips ?? [], [], force: false);
    }

    /// <summary>
    /// With --force, a certificate is replaced only by one for the same subject: two names can map to one file
    /// (tenant "acme-eu" with user "alice", tenant "acme" with user "eu-alice"), and the other's certificate and key
    /// would be lost, and with them the means to revoke it.
    /// </summary>
    private static void RefuseOtherSubject(string certificatePath, X500DistinguishedName subject)
    {
        if (!File.Exists(certificatePath)) return;
        string existing;
        try
        {
            using var current = PemLoader.LoadCertificate(certificatePath);
            existing = current.SubjectName.Name;
        }
        catch (PkiException)
        {
            return; // not a certificate any more: nothing of anyone's to keep
        }
        if (existing != subject.Name)
            throw new PkiException(PkiError.Exists, $"{certificatePath} holds the certificate of {existing}, not of {subject.Name}; --force replaces a certificate of the same subject only: move it aside first");
    }

    private IssuedCertificate Issue(
        X500DistinguishedName subject, string extendedUsageOid, X509Extension? subjectAlternativeName, string stem, bool force)
    {
        var certificatePath = Path.Combine(Directory, stem + ".crt");
        var keyPath = Path.Combine(Directory, stem + ".key");
        if (Path.GetFullPath(certificatePath) == Path.GetFullPath(CaCertificatePath))
            throw new PkiException(PkiError.BadInput, $"the name '{stem}' would take the CA's own files ({CaCertificatePath}); pick another name");
        RefuseExisting(force, certificatePath, keyPath);
        RefuseOtherSubject(certificatePath, subject);

        var (caCertificate, caKey) = LoadCa();
        using (caCertificate)
        using (caKey)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(extendedUsageOid)], critical: false));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(
                caCertificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
            if (subjectAlternativeName is not null)
            {
                request.CertificateExtensions.Add(subjectAlternativeName);
            }

            var now = DateTimeOffset.UtcNow;
            var notAfter = now + LeafValidity;
            var caNotAfter = new DateTimeOffset(caCertificate.NotAfter.ToUniversalTime());
            if (notAfter > caNotAfter)
            {
                notAfter = caNotAfter;
            }

            if (notAfter <= now)
            {
                throw new PkiException(PkiError.BadInput, $"{CaCertificatePath}: the CA has expired");
            }

            using var certificate = request.Create(
                caCertificate.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now - Backdate, notAfter, NewSerial());
            WritePair(certificatePath, keyPath, certificate, key, force);
            return new IssuedCertificate(certificatePath, keyPath, CertificatePin.Compute(certificate));
        }
    }

    private (X509Certificate2 Certificate, ECDsa Key) LoadCa()
    {
        if (!HasCa)
        {
            throw new PkiException(PkiError.MissingCa, $"no CA in {Directory} (expected ca.crt and ca.key); run `isotun pki init` first");
        }

        var certificate = PemLoader.LoadCertificate(CaCertificatePath);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(CaKeyPath));
            if (!key.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(certificate.PublicKey.ExportSubjectPublicKeyInfo()))
            {
                throw new PkiException(PkiError.BadInput, $"{CaKeyPath} does not belong to {CaCertificatePath}");
            }

            return (certificate, key);
        }
        catch (Exception ex) when (ex is not PkiException)
        {
            certificate.Dispose();
            key.Dispose();
            // Never include the key text or parser detail that could quote it.
            throw ex is IOException or UnauthorizedAccessException
                ? new PkiException(PkiError.Io, $"{CaKeyPath}: {ex.Message}")
                : new PkiException(PkiError.BadInput, $"{CaKeyPath}: not an ECDSA private key in PEM form");
        }
        catch
        {
            certificate.Dispose();
            key.Dispose();
            throw;
        }
    }

    private void WritePair(string certificatePath, string keyPath, X509Certificate2 certificate, ECDsa key, bool overwrite)
    {
        try
        {
            EnsureDirectory();
            var keyPem = key.ExportPkcs8PrivateKeyPem();
            // A replaced pair whose certificate cannot be written gets its old key back: a new key beside the old
            // certificate would serve nothing, and the old key (a CA's, say) would be gone.
            string? oldKey = overwrite && File.Exists(keyPath) ? File.ReadAllText(keyPath) : null;
            SecretFile.WriteAllText(keyPath, keyPem, overwrite);
            try
            {
                AtomicFile.Write(
                    certificatePath, System.Text.Encoding.ASCII.GetBytes(certificate.ExportCertificatePem() + "\n"), overwrite, AtomicFile.PublicMode);
            }
            catch (Exception) when (oldKey is not null)
            {
                SecretFile.WriteAllText(keyPath, oldKey, overwrite: true);
                throw;
            }
        }
        catch (IOException ex)
        {
            throw new PkiException(PkiError.Io, ex.Message);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new PkiException(PkiError.Io, ex.Message);
        }
    }

    private void EnsureDirectory()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            return;
        }

        // Holds private keys: owner only.
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(Directory);
        }
        else
        {
            System.IO.Directory.CreateDirectory(
                Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static void RefuseExisting(bool force, params string[] paths)
    {
        if (force)
        {
            return;
        }

        foreach (var path in paths)
        {
            if (File.Exists(path))
            {
                throw new PkiException(PkiError.Exists, $"{path} exists; use --force to replace it");
            }
        }
    }

    private static byte[] NewSerial()
    {
        // 16 random bytes, positive, with no leading zero byte so the DER INTEGER stays minimal.
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x40);
        return serial;
    }
}
