namespace Isotun.Pki;

/// <summary>Where a certificate and its key were written, and the certificate's <c>pin-sha256:</c> pin.</summary>
public sealed record IssuedCertificate(string CertificatePath, string KeyPath, string Pin);
