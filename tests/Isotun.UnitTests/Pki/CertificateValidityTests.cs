using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Pki;

namespace Isotun.UnitTests.Pki;

public sealed class CertificateValidityTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);

    private static X509Certificate2 Certificate(string subject, DateTimeOffset notBefore, DateTimeOffset notAfter, params string[] dnsNames)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var n in dnsNames) names.AddDnsName(n);
        names.AddIpAddress(IPAddress.Parse("198.18.0.1"));
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(notBefore, notAfter);
    }

    private static X509Certificate2 Named(params string[] dnsNames) => Certificate("CN=server", Now.AddDays(-1), Now.AddDays(365), dnsNames);

    [Theory]
    [InlineData(-1, 365, null)]
    [InlineData(-1, 3, "expires on 2026-12-10 12:00 UTC, in 3 days: renew it and reload")]
    [InlineData(-30, -2, "expired on 2026-12-05 12:00 UTC: clients that check it refuse it; renew it and reload")]
    [InlineData(2, 365, "is not valid before 2026-12-09 12:00 UTC: clients that check it refuse it until then")]
    public void Dates_are_told_when_expired_not_yet_valid_or_within_two_weeks_of_the_end(int fromDays, int toDays, string? expected)
    {
        using var cert = Certificate("CN=server", Now.AddDays(fromDays), Now.AddDays(toDays), "vpn.example");
        Assert.Equal(expected, CertificateValidity.DateProblem(cert, Now));
    }

    [Theory]
    [InlineData("vpn.acme.example", "vpn.acme.example", true)]
    [InlineData("VPN.ACME.EXAMPLE.", "vpn.acme.example", true)]
    [InlineData("vpn.globex.example", "vpn.acme.example", false)]
    [InlineData("*.acme.example", "vpn.acme.example", false)]
    [InlineData("*.acme.example", "*.acme.example", true)]
    [InlineData("vpn.acme.example", "*.acme.example", true)]
    [InlineData("acme.example", "*.acme.example", false)]
    public void A_name_or_a_pattern_is_covered_by_the_certificates_names(string sni, string certificateName, bool covered)
    {
        using var cert = Named(certificateName);
        Assert.Equal(covered, CertificateValidity.Covers(cert, sni));
    }

    [Fact]
    public void The_names_of_a_certificate_are_its_dns_names_else_its_common_name()
    {
        using var two = Named("a.example", "b.example");
        Assert.Equal("a.example, b.example", CertificateValidity.Names(two));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cnOnly = new CertificateRequest("CN=legacy.example", key, HashAlgorithmName.SHA256).CreateSelfSigned(Now.AddDays(-1), Now.AddDays(1));
        Assert.Equal("legacy.example", CertificateValidity.Names(cnOnly));
        using var ipOnly = Named();
        Assert.Equal("server", CertificateValidity.Names(ipOnly)); // its common name
    }
}
