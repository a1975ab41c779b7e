using System.Security.Cryptography.X509Certificates;

namespace Isotun.Pki;

/// <summary>What an operator should hear about a certificate a listener presents: its dates, and the names it is for.</summary>
public static class CertificateValidity
{
    /// <summary>How long before its end a certificate is warned of, at start and at each reload that loads it.</summary>
    public static readonly TimeSpan WarnBefore = TimeSpan.FromDays(14);

    /// <summary>What is wrong with <paramref name="certificate"/>'s dates at <paramref name="now"/> (expired, not yet
    /// valid, or ending within <see cref="WarnBefore"/>), as the end of a sentence naming it; null when nothing is.</summary>
    public static string? DateProblem(X509Certificate2 certificate, DateTimeOffset now)
    {
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        if (notAfter <= now) return $"expired on {notAfter:yyyy-MM-dd HH:mm} UTC: clients that check it refuse it; renew it and reload";
        if (notBefore > now) return $"is not valid before {notBefore:yyyy-MM-dd HH:mm} UTC: clients that check it refuse it until then";
        if (notAfter - now < WarnBefore) return $"expires on {notAfter:yyyy-MM-dd HH:mm} UTC, in {(notAfter - now).TotalDays:0.#} days: renew it and reload";
        return null;
    }

    /// <summary>
    /// Whether <paramref name="certificate"/> is for <paramref name="sni"/>: a host name, or a pattern <c>*.name</c>,
    /// which is taken as one name under it (a wildcard certificate covers one label, so <c>a.b.name</c> may still
    /// fall outside it). A client that checks names refuses a certificate that is not for the name it asked.
    /// </summary>
    public static bool Covers(X509Certificate2 certificate, string sni)
    {
        var name = sni.StartsWith("*.", StringComparison.Ordinal) ? "x" + sni[1..] : sni;
        return certificate.MatchesHostname(name.TrimEnd('.'));
    }

    /// <summary>The DNS names of <paramref name="certificate"/>'s subject alternative names, else its common name, for a
    /// message; "no host name" when it has neither.</summary>
    public static string Names(X509Certificate2 certificate)
    {
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).ToList();
        if (names.Count > 0) return string.Join(", ", names);
        var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return string.IsNullOrEmpty(cn) ? "no host name" : cn;
    }
}
