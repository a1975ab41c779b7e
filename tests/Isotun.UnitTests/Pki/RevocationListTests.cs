using Isotun.Pki;
using Isotun.Security;
using Isotun.Server;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Pki;

/// <summary>`isotun pki revoke` writes a CRL; a tenant's client-crl refuses the certificate at login and, on reload, ends its sessions.</summary>
public sealed class RevocationListTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Revoke_writes_a_signed_crl_that_lists_each_revoked_serial()
    {
        var pki = new PkiDirectory(_temp.File("pki"));
        pki.InitCa();
        var alice = pki.IssueClient("acme", "alice");
        var bob = pki.IssueClient("acme", "bob");
        Assert.Equal(1, pki.Revoke(alice.CertificatePath));
        Assert.Equal(2, pki.Revoke(bob.CertificatePath));
        Assert.StartsWith("-----BEGIN X509 CRL-----", File.ReadAllText(pki.CrlPath));
        var list = RevocationList.Load(pki.CrlPath);
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        Assert.True(list.IsRevoked(a.SerialNumber));
        Assert.True(list.IsRevokedStamp(CredentialStamp.ForCertificate(a.SerialNumber)));
        var carol = pki.IssueClient("acme", "carol");
        using var c = PemLoader.LoadCertificate(carol.CertificatePath);
        Assert.False(list.IsRevoked(c.SerialNumber));

        // A certificate of another CA is not this CA's to revoke.
        var other = new PkiDirectory(_temp.File("other"));
        other.InitCa();
        var stranger = other.IssueClient("acme", "eve");
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => pki.Revoke(stranger.CertificatePath)).Error);
    }

    [Fact]
    public void Every_crl_of_a_concatenated_file_counts_and_a_damaged_one_among_them_refuses_the_file()
    {
        // A tenant whose client-ca holds two CAs gets both CAs' CRLs in one file: only the first was read.
        var one = new PkiDirectory(_temp.File("one"));
        one.InitCa();
        var alice = one.IssueClient("acme", "alice");
        one.Revoke(alice.CertificatePath);
        var two = new PkiDirectory(_temp.File("two"));
        two.InitCa();
        var bob = two.IssueClient("acme", "bob");
        two.Revoke(bob.CertificatePath);
        var both = _temp.File("both.crl");
        File.WriteAllText(both, File.ReadAllText(one.CrlPath) + File.ReadAllText(two.CrlPath));
        var list = RevocationList.Load(both);
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        using var b = PemLoader.LoadCertificate(bob.CertificatePath);
        Assert.True(list.IsRevoked(a.SerialNumber));
        Assert.True(list.IsRevoked(b.SerialNumber));

        File.WriteAllText(both, File.ReadAllText(one.CrlPath) + "-----BEGIN X509 CRL-----\nMIIBAgMEBQ==\n-----END X509 CRL-----\n");
        Assert.Contains("CRL 2 of 2", Assert.Throws<PkiException>(() => RevocationList.Load(both)).Message);
        // DER with bytes after the CRL: not a CRL file.
        File.WriteAllBytes(both, [.. Convert.FromBase64String(string.Concat(File.ReadAllLines(one.CrlPath).Where(l => !l.StartsWith("-----")))), 0x00]);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => RevocationList.Load(both)).Error);
    }

    [Fact]
    public async Task Revocations_made_at_once_are_all_kept_and_a_damaged_list_is_a_clear_refusal()
    {
        var pki = new PkiDirectory(_temp.File("pki"));
        pki.InitCa();
        var certificates = Enumerable.Range(0, 8).Select(i => pki.IssueClient("acme", $"user{i}")).ToList();
        // As a script offboarding several users at once would: each read the list, added one and wrote it back.
        await Task.WhenAll(certificates.Select(c => Task.Run(() => pki.Revoke(c.CertificatePath))));
        var list = RevocationList.Load(pki.CrlPath);
        Assert.Equal(certificates.Count, list.Count);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(pki.CrlPath)!, "*.tmp"));

        var good = File.ReadAllText(pki.CrlPath);
        foreach (var bad in new[]
        {
            "-----BEGIN X509 CRL-----\nMIIBAgMEBQ==\n-----END X509 CRL-----\n", // damaged
            "-----BEGIN X509 CRL-----\nMIIB\n", // cut short
            good + good, // two lists: rewritten with one, the other would be lost
        })
        {
            File.WriteAllText(pki.CrlPath, bad);
            var e = Assert.Throws<PkiException>(() => pki.Revoke(certificates[0].CertificatePath));
            Assert.Equal(PkiError.BadInput, e.Error);
            Assert.Contains("move it aside", e.Message);
            Assert.Equal(bad, File.ReadAllText(pki.CrlPath));
        }
    }

    [Fact]
    public void A_list_past_its_next_update_still_refuses_what_it_lists_and_says_it_is_stale()
    {
        var pki = new PkiDirectory(_temp.File("pki"));
        pki.InitCa();
        var alice = pki.IssueClient("acme", "alice");
        using var ca = PemLoader.LoadCertificate(pki.CaCertificatePath);
        using var key = System.Security.Cryptography.ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(pki.CaKeyPath));
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        var builder = new System.Security.Cryptography.X509Certificates.CertificateRevocationListBuilder();
        builder.AddEntry(a, DateTimeOffset.UtcNow.AddDays(-10));
        using var signer = System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions.CopyWithPrivateKey(ca, key);
        var nextUpdate = DateTimeOffset.UtcNow.AddDays(-1);
        var der = builder.Build(signer, 1, nextUpdate, System.Security.Cryptography.HashAlgorithmName.SHA256, thisUpdate: DateTimeOffset.UtcNow.AddDays(-8));
        File.WriteAllBytes(_temp.File("stale.crl"), der);

        var list = RevocationList.Load(_temp.File("stale.crl"));
        Assert.True(list.IsRevoked(a.SerialNumber));
        Assert.True(list.IsStale(DateTimeOffset.UtcNow));
        Assert.False(list.IsStale(DateTimeOffset.UtcNow.AddDays(-2)));
        pki.Revoke(alice.CertificatePath);
        Assert.False(RevocationList.Load(pki.CrlPath).IsStale(DateTimeOffset.UtcNow)); // the lists isotun writes run ten years
    }

    /// <summary>A PEM block cut short (a half-copied file) or with a damaged body is refused like any malformed CRL, not thrown past the config loader.</summary>
    [Theory]
    [InlineData("-----BEGIN X509 CRL-----\nMIIB\n")]
    [InlineData("-----BEGIN X509 CRL-----\nnot base64 at all!\n-----END X509 CRL-----\n")]
    [InlineData("junk before -----BEGIN X509 CRL-----")]
    public void A_truncated_or_damaged_pem_crl_is_refused(string text)
    {
        File.WriteAllText(_temp.File("cut.crl"), text);
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => RevocationList.Load(_temp.File("cut.crl"))).Error);
    }

    [Fact]
    public void A_file_that_is_not_a_crl_is_refused_and_hostile_bytes_never_throw()
    {
        File.WriteAllText(_temp.File("bad.crl"), "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
        Assert.Equal(PkiError.BadInput, Assert.Throws<PkiException>(() => RevocationList.Load(_temp.File("bad.crl"))).Error);
        Assert.Throws<PkiException>(() => RevocationList.Load(_temp.File("missing.crl")));
        var rng = new Random(5);
        var buffer = new byte[300];
        for (int i = 0; i < 20000; i++)
        {
            rng.NextBytes(buffer);
            if (rng.Next(2) == 0) buffer[0] = 0x30;
            RevocationList.TryParse(buffer.AsSpan(0, rng.Next(buffer.Length)), out _);
        }
    }

    [Fact]
    public async Task A_revoked_certificate_is_refused_at_login_and_a_reload_ends_its_live_session()
    {
        var pki = new PkiDirectory(_temp.File("pki"));
        pki.InitCa();
        var alice = pki.IssueClient("acme", "alice");
        var bob = pki.IssueClient("acme", "bob");
        string Tenant(bool crl) => $"""
            tenants:
              - name: acme
                pool: 10.10.0.0/24
                client-ca: pki/ca.crt
            {(crl ? "    client-crl: pki/ca.crl\n" : "")}
            """;
        var config = Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, Tenant(crl: false));
        await using var server = new VpnServer(Isotun.UnitTests.Core.Server.TestServerConfig.Load(config), NullLoggerFactory.Instance, new MemoryStateStore());
        var tenant = server.Authenticator.Tenants["acme"];
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        using var b = PemLoader.LoadCertificate(bob.CertificatePath);
        var aliceSession = server.Sessions.TryCreate(tenant, "alice", 100, out _, CredentialStamp.ForCertificate(a.SerialNumber))!;
        var bobSession = server.Sessions.TryCreate(tenant, "bob", 100, out _, CredentialStamp.ForCertificate(b.SerialNumber))!;

        pki.Revoke(alice.CertificatePath);
        Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, Tenant(crl: true));
        var report = server.Reload();
        Assert.Contains("1 session(s) ended: their user was removed or given a new password, or their certificate revoked or no longer trusted", report);
        Assert.Null(server.Sessions.TryGet(aliceSession.SessionId));
        Assert.NotNull(server.Sessions.TryGet(bobSession.SessionId));
        Assert.False(server.CredentialStillValid(tenant, "alice", aliceSession.Credential, DateTimeOffset.UtcNow)); // also after a restart, from the cookie

        var msg = new Isotun.Protocol.Auth.ClientAuthMessage("init", "v9.01", null, null, new Dictionary<string, string>(), null, false);
        var refused = server.Authenticator.Decide(msg, "/acme", new PeerInfo(null, null, Authenticator.Inspect(a)));
        Assert.Equal(Isotun.Metrics.AuthOutcome.BadCertificate, refused.Outcome);
        Assert.Equal("certificate revoked", refused.Message);
        Assert.True(server.Authenticator.Decide(msg, "/acme", new PeerInfo(null, null, Authenticator.Inspect(b))).Success);
    }

    /// <summary>Two CAs, pki/ and pki2/, and both.crt with both.</summary>
    private (PkiDirectory One, PkiDirectory Two) TwoCas()
    {
        var one = new PkiDirectory(_temp.File("pki"));
        one.InitCa();
        var two = new PkiDirectory(_temp.File("pki2"));
        two.InitCa();
        File.WriteAllText(_temp.File("both.crt"), File.ReadAllText(one.CaCertificatePath) + File.ReadAllText(two.CaCertificatePath));
        return (one, two);
    }

    /// <summary>Tenant acme, trusting the CAs of <paramref name="ca"/>.</summary>
    private static string CaTenant(string ca) => $"""
        tenants:
          - name: acme
            pool: 10.10.0.0/24
            client-ca: {ca}
        """;

    [Fact]
    public async Task A_reload_that_takes_a_ca_out_of_a_tenant_ends_its_earlier_certificate_logins_and_one_that_adds_a_ca_does_not()
    {
        var (one, two) = TwoCas();
        var alice = one.IssueClient("acme", "alice");
        var bob = two.IssueClient("acme", "bob");
        var config = Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant("both.crt"));
        await using var server = new VpnServer(Isotun.UnitTests.Core.Server.TestServerConfig.Load(config), NullLoggerFactory.Instance, new MemoryStateStore());
        var tenant = server.Authenticator.Tenants["acme"];
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        using var b = PemLoader.LoadCertificate(bob.CertificatePath);
        var loggedIn = DateTimeOffset.UtcNow;
        var aliceSession = server.Sessions.TryCreate(tenant, "alice", 100, out _, CredentialStamp.ForCertificate(a.SerialNumber))!;
        var bobSession = server.Sessions.TryCreate(tenant, "bob", 100, out _, CredentialStamp.ForCertificate(b.SerialNumber))!;

        // The second CA is taken out (compromised): which sessions it admitted cannot be told from them, so every
        // certificate login from before ends, and its cookie is refused; the users log in again, and only bob cannot.
        Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant("pki/ca.crt"));
        Assert.Contains("2 session(s) ended: their user was removed or given a new password, or their certificate revoked or no longer trusted", server.Reload());
        Assert.Null(server.Sessions.TryGet(bobSession.SessionId));
        Assert.Null(server.Sessions.TryGet(aliceSession.SessionId));
        Assert.False(server.CredentialStillValid(tenant, "bob", bobSession.Credential, loggedIn));
        Assert.True(server.CredentialStillValid(tenant, "alice", aliceSession.Credential, DateTimeOffset.UtcNow.AddSeconds(1)));
        var msg = new Isotun.Protocol.Auth.ClientAuthMessage("init", "v9.01", null, null, new Dictionary<string, string>(), null, false);
        Assert.True(server.Authenticator.Decide(msg, "/acme", new PeerInfo(null, null, Authenticator.Inspect(a))).Success);
        Assert.False(server.Authenticator.Decide(msg, "/acme", new PeerInfo(null, null, Authenticator.Inspect(b))).Success);

        // Trusting more ends nothing.
        var again = server.Sessions.TryCreate(tenant, "alice", 100, out _, CredentialStamp.ForCertificate(a.SerialNumber))!;
        Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant("both.crt"));
        server.Reload();
        Assert.NotNull(server.Sessions.TryGet(again.SessionId));
    }

    /// <summary>
    /// Whom a tenant trusted is kept in the state file: a CA taken out while the server was down (or by a reload before
    /// a restart) refuses the cookies of earlier certificate logins after the start too; a start that trusts as much
    /// or more keeps them, and so does a restart after the narrowing (it is not narrowed again).
    /// </summary>
    [Fact]
    public async Task A_ca_taken_out_while_the_server_was_down_refuses_the_cookies_of_earlier_certificate_logins()
    {
        var (one, _) = TwoCas();
        var alice = one.IssueClient("acme", "alice");
        using var a = PemLoader.LoadCertificate(alice.CertificatePath);
        ulong stamp = CredentialStamp.ForCertificate(a.SerialNumber);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
        var state = new MemoryStateStore(clock);
        var loggedIn = clock.GetUtcNow();
        async Task<bool> CookieTakenAfterStart(string ca)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            var config = Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant(ca));
            await using var server = new VpnServer(Isotun.UnitTests.Core.Server.TestServerConfig.Load(config), NullLoggerFactory.Instance, state, clock);
            return server.CredentialStillValid(server.Authenticator.Tenants["acme"], "alice", stamp, loggedIn);
        }

        Assert.True(await CookieTakenAfterStart("both.crt"));
        Assert.True(await CookieTakenAfterStart("both.crt")); // nothing changed
        Assert.False(await CookieTakenAfterStart("pki/ca.crt")); // the second CA went while the server was down
        Assert.False(await CookieTakenAfterStart("pki/ca.crt")); // and stays gone: the login is still from before
        loggedIn = clock.GetUtcNow();
        Assert.True(await CookieTakenAfterStart("pki/ca.crt")); // a login after the narrowing
        Assert.True(await CookieTakenAfterStart("both.crt")); // trusting more narrows nothing

        // A reload that narrows, then a restart: still refused.
        var reloaded = Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant("both.crt"));
        await using (var server = new VpnServer(Isotun.UnitTests.Core.Server.TestServerConfig.Load(reloaded), NullLoggerFactory.Instance, state, clock))
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            Isotun.UnitTests.Core.Server.TestServerConfig.Write(_temp, CaTenant("pki2/ca.crt"));
            server.Reload();
            Assert.False(server.CredentialStillValid(server.Authenticator.Tenants["acme"], "alice", stamp, loggedIn));
        }
        Assert.False(await CookieTakenAfterStart("pki2/ca.crt"));
    }
}
