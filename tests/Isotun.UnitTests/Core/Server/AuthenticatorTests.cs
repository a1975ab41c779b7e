using System.Security.Cryptography.X509Certificates;
using Isotun.Metrics;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Proxy;
using Isotun.Server;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// Tenant selection and the checks that keep a user of one tenant out of every other: by password, by
/// certificate, by a crafted path, group or server name. Refusals say what failed and never name a tenant.
/// </summary>
public class AuthenticatorTests(TenantWorld world) : IClassFixture<TenantWorld>
{
    private Authenticator Auth => world.Authenticator;

    // ---- Selection -------------------------------------------------------------------------------------

    [Theory]
    [InlineData("/alpha", null, "alice", TenantWorld.AlicePassword, "alpha")]
    [InlineData("/alpha/", null, "alice", TenantWorld.AlicePassword, "alpha")]
    [InlineData("/alpha?x=1", null, "alice", TenantWorld.AlicePassword, "alpha")]
    [InlineData("/beta", "beta", "bob", TenantWorld.BobPassword, "beta")]
    [InlineData("/", "beta", "bob", TenantWorld.BobPassword, "beta")]
    [InlineData("/auth", "alpha", "alice", TenantWorld.AlicePassword, "alpha")]
    public void The_path_or_the_group_select_picks_the_tenant(string target, string? group, string user, string password, string tenant)
    {
        var d = Auth.Decide(Reply(user, password, group), target, Peer());
        AssertSuccess(d, tenant, user);
    }

    [Theory]
    [InlineData("vpn.gamma.example")]
    [InlineData("VPN.Gamma.Example")]
    public void The_server_name_picks_the_tenant_that_owns_it(string sni)
    {
        AssertSuccess(Auth.Decide(Reply("carol", TenantWorld.CarolPassword), "/", Peer(sni)), "gamma", "carol");
        AssertSuccess(Auth.Decide(Reply("carol", TenantWorld.CarolPassword, "gamma"), "/gamma", Peer(sni)), "gamma", "carol");
        Assert.Same(world.Tenants["gamma"], Auth.TenantForServerName(sni));
    }

    [Fact]
    public void A_server_name_no_tenant_owns_selects_nothing()
    {
        Assert.Null(Auth.TenantForServerName("vpn.other.example"));
        Assert.Null(Auth.TenantForServerName(null));
        Assert.Null(Auth.TenantForServerName(""));
        AssertSuccess(Auth.Decide(Reply("alice", TenantWorld.AlicePassword), "/alpha", Peer("vpn.other.example")), "alpha", "alice");
    }

    [Fact]
    public void The_certificate_OU_picks_the_tenant_when_nothing_else_does()
    {
        AssertSuccess(Auth.Decide(Init(), "/", Peer(cert: world.AliceCert)), "alpha", "alice");
        AssertSuccess(Auth.Decide(Init(), "/", Peer(cert: world.BobCert)), "beta", "bob");
        // Server-wide CA, tenant without a CA of its own.
        AssertSuccess(Auth.Decide(Init(), "/", Peer(cert: world.CarolCert)), "gamma", "carol");
    }

    [Fact]
    public void The_certificate_must_also_fit_a_tenant_named_by_path_group_or_server_name()
    {
        AssertSuccess(Auth.Decide(Init(), "/alpha", Peer(cert: world.AliceCert)), "alpha", "alice");
        AssertSuccess(Auth.Decide(Init("alpha"), "/", Peer(cert: world.AliceCert)), "alpha", "alice");
        AssertSuccess(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", world.CarolCert)), "gamma", "carol");
    }

    [Fact]
    public void With_one_tenant_no_selection_is_needed()
    {
        var only = new Authenticator(new Dictionary<string, TenantRuntime> { ["alpha"] = world.Tenants["alpha"] }, null);
        AssertSuccess(only.Decide(Reply("alice", TenantWorld.AlicePassword), "/", Peer()), "alpha", "alice");
    }

    [Fact]
    public void With_several_tenants_and_no_selection_the_user_is_asked_for_a_group()
    {
        var d = Auth.Decide(Reply("alice", TenantWorld.AlicePassword), "/", Peer());
        Assert.True(d.ShowForm);
        Assert.False(d.Success);
        Assert.Null(d.Tenant);
        Assert.Equal("Please choose a group.", d.Message);
    }

    [Fact]
    public void An_OU_that_several_tenants_admit_asks_for_a_group()
    {
        var d = Auth.Decide(Init(), "/", Peer(cert: world.SharedCert));
        Assert.True(d.ShowForm);
        Assert.False(d.Success);
        AssertSuccess(Auth.Decide(Init("epsilon"), "/", Peer(cert: world.SharedCert)), "epsilon", "sam");
    }

    [Theory]
    [InlineData("init")]
    [InlineData("auth-reply")]
    public void Without_credentials_the_form_is_shown(string type)
    {
        var d = Auth.Decide(new ClientAuthMessage(type, "v9", null, null, new Dictionary<string, string>(), null, false), "/alpha", Peer());
        Assert.True(d.ShowForm);
        Assert.Same(world.Tenants["alpha"], d.Tenant);
        var noPassword = Auth.Decide(Reply("alice", null), "/alpha", Peer());
        Assert.True(noPassword.ShowForm);
    }

    // ---- Passwords -------------------------------------------------------------------------------------

    [Fact]
    public void A_wrong_password_and_an_unknown_user_get_the_same_reply()
    {
        var wrong = Auth.Decide(Reply("alice", "guess"), "/alpha", Peer());
        var unknown = Auth.Decide(Reply("mallory", "guess"), "/alpha", Peer());
        AssertRefused(wrong, AuthOutcome.BadPassword, "login failed");
        AssertRefused(unknown, AuthOutcome.UnknownUser, "login failed");
        Assert.Equal(wrong.Message, unknown.Message);
        Assert.Equal(wrong.ShowForm, unknown.ShowForm);
    }

    [Fact]
    public void An_unknown_user_costs_what_a_known_users_wrong_password_costs_at_the_files_hash_cost()
    {
        // The tenant's hashes have the least cost (1,000 iterations); an unknown user checked at the default cost
        // (310,000) took some 300 times as long, which told known names from unknown ones by the time of a reply.
        // Medians of interleaved logins, and a bound far from both: a timing side channel, not a benchmark.
        var wrong = new List<double>();
        var unknown = new List<double>();
        for (int i = 0; i < 15; i++)
        {
            wrong.Add(Time(() => Auth.Decide(Reply("alice", "guess"), "/alpha", Peer())));
            unknown.Add(Time(() => Auth.Decide(Reply("mallory", "guess"), "/alpha", Peer())));
        }
        double ratio = Median(unknown) / Median(wrong);
        Assert.True(ratio is > 0.2 and < 5, $"an unknown user took {ratio:0.0}x a known user's wrong password ({Median(unknown):0.000} ms against {Median(wrong):0.000} ms)");

        static double Time(Action login)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            login();
            return watch.Elapsed.TotalMilliseconds;
        }

        static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
    }

    [Theory]
    [InlineData("/beta", null, "alice", TenantWorld.AlicePassword)]
    [InlineData("/", "beta", "alice", TenantWorld.AlicePassword)]
    [InlineData("/alpha", null, "bob", TenantWorld.BobPassword)]
    [InlineData("/gamma", null, "alice", TenantWorld.AlicePassword)]
    public void A_users_password_does_not_open_another_tenant(string target, string? group, string user, string password)
    {
        // Each tenant's password file is its own: alice does not exist in beta.
        AssertRefused(Auth.Decide(Reply(user, password, group), target, Peer()), AuthOutcome.UnknownUser, "login failed");
    }

    [Fact]
    public void A_tenant_without_a_password_file_refuses_passwords()
    {
        AssertRefused(Auth.Decide(Reply("alice", TenantWorld.AlicePassword), "/delta", Peer()), AuthOutcome.UnknownUser, "login failed");
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("alice bob")]
    [InlineData("alice\n")]
    [InlineData("x123456789x123456789x123456789x123456789x123456789x123456789x12345")]
    public void Malformed_user_names_are_refused_without_a_lookup(string user)
    {
        AssertRefused(Auth.Decide(Reply(user, "whatever"), "/alpha", Peer()), AuthOutcome.BadRequest, "login failed");
    }

    // ---- Crafted selection -----------------------------------------------------------------------------

    [Theory]
    [InlineData("/alpha", "beta", "bob", TenantWorld.BobPassword)]
    [InlineData("/beta", "alpha", "alice", TenantWorld.AlicePassword)]
    [InlineData("/alpha", "beta", "alice", TenantWorld.AlicePassword)]
    public void A_path_and_a_group_that_disagree_are_refused_before_any_password_check(string target, string group, string user, string password)
    {
        AssertRefused(Auth.Decide(Reply(user, password, group), target, Peer()), AuthOutcome.WrongTenant, "the group does not match the URL");
    }

    [Theory]
    [InlineData("/", "alpha")]
    [InlineData("/alpha", null)]
    [InlineData("/alpha", "alpha")]
    public void A_group_or_path_other_than_the_server_names_tenant_is_refused(string target, string? group)
    {
        AssertRefused(Auth.Decide(Reply("alice", TenantWorld.AlicePassword, group), target, Peer("vpn.gamma.example")),
            AuthOutcome.WrongTenant, "the group does not match the server name");
        // The same with a certificate of the tenant named.
        AssertRefused(Auth.Decide(Init(group), target, Peer("vpn.gamma.example", world.AliceCert)),
            AuthOutcome.WrongTenant, "the group does not match the server name");
    }

    [Theory]
    [InlineData("/nosuch", null)]
    [InlineData("/", "nosuch")]
    [InlineData("/ALPHA", null)]
    [InlineData("/", "Alpha")]
    [InlineData("/", "alpha ")]
    [InlineData("/..", null)]
    public void An_unknown_group_is_refused_without_listing_others(string target, string? group)
    {
        var d = Auth.Decide(Reply("alice", TenantWorld.AlicePassword, group), target, Peer());
        AssertRefused(d, AuthOutcome.UnknownTenant, "unknown group");
        Assert.Null(d.Tenant);
    }

    // ---- Certificates ----------------------------------------------------------------------------------

    [Fact]
    public void A_certificate_from_this_tenants_CA_naming_another_tenants_OU_is_refused()
    {
        // Issued by alpha's CA with OU=beta: not valid for alpha (OU) nor for beta (CA).
        AssertRefused(Auth.Decide(Init(), "/alpha", Peer(cert: world.AlphaCaNamingBeta)), AuthOutcome.WrongTenant, "certificate is not valid for this group");
        AssertRefused(Auth.Decide(Init(), "/beta", Peer(cert: world.AlphaCaNamingBeta)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
        AssertRefused(Auth.Decide(Init(), "/", Peer(cert: world.AlphaCaNamingBeta)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
    }

    [Fact]
    public void A_certificate_from_another_tenants_CA_is_refused_even_with_the_right_OU()
    {
        // Beta's CA issued OU=alpha: alpha trusts only its own CA.
        AssertRefused(Auth.Decide(Init(), "/", Peer(cert: world.BetaCaNamingAlpha)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
        AssertRefused(Auth.Decide(Init(), "/alpha", Peer(cert: world.BetaCaNamingAlpha)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
        AssertRefused(Auth.Decide(Init("alpha"), "/", Peer(cert: world.BetaCaNamingAlpha)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
    }

    [Theory]
    [InlineData("/beta", null)]
    [InlineData("/", "beta")]
    [InlineData("/gamma", null)]
    public void A_valid_certificate_of_one_tenant_is_refused_by_another(string target, string? group)
    {
        AssertRefused(Auth.Decide(Init(group), target, Peer(cert: world.AliceCert)), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
    }

    [Fact]
    public void A_certificate_trusted_by_the_tenant_but_naming_another_OU_is_refused()
    {
        // gamma trusts the server-wide CA, which also issued sam's OU=shared certificate.
        AssertRefused(Auth.Decide(Init(), "/gamma", Peer(cert: world.SharedCert)), AuthOutcome.WrongTenant, "certificate is not valid for this group");
    }

    [Fact]
    public void A_certificate_naming_no_tenant_is_refused()
    {
        AssertRefused(Auth.Decide(Init(), "/", Peer(cert: world.AlphaCaNamingNobody)), AuthOutcome.WrongTenant, "certificate names no group of this server");
    }

    [Fact]
    public void A_certificate_is_refused_where_no_CA_is_configured()
    {
        var noCa = new Authenticator(new Dictionary<string, TenantRuntime> { ["delta"] = world.Tenants["delta"] }, null);
        Assert.False(noCa.CertificateAuthEnabled);
        Assert.True(Auth.CertificateAuthEnabled);
        AssertRefused(noCa.Decide(Init(), "/", Peer(cert: world.SharedCert)), AuthOutcome.BadCertificate, "certificate login is not enabled for this group");
    }

    // ---- Certificates through a gateway that terminated TLS (PROXY v2) ---------------------------------

    /// <summary>The certificate as the PROXY listener reads it from a terminating gateway's header.</summary>
    private static ClientCertificateInfo? FromGateway(X509Certificate2? cert, bool verified = true, bool forwarded = true, string? cn = null)
    {
        var flags = ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession;
        var ssl = new ProxySslInfo(flags, verified ? 0u : 1u, "TLSv1.3", cn ?? cert?.GetNameInfo(X509NameType.SimpleName, false));
        var header = new ProxyHeader(ProxyCommand.Proxy, null, null, "vpn.gamma.example", ssl, ClientCertificate: forwarded ? cert?.RawData : null);
        // Through the wire format, as the listener gets it.
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryParse(ProxyV2Writer.ToArray(header), 8192, out var parsed, out _));
        return ProxyListener.Certificate(parsed!);
    }

    [Fact]
    public void A_certificate_forwarded_by_a_gateway_is_checked_against_the_tenant_like_a_direct_one()
    {
        AssertSuccess(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: FromGateway(world.CarolCert))), "gamma", "carol");
        // No server name that selects a tenant: the OU does, as in a direct handshake.
        AssertSuccess(Auth.Decide(Init(), "/", Peer(info: FromGateway(world.AliceCert))), "alpha", "alice");
    }

    [Fact]
    public void A_gateway_verdict_does_not_carry_a_certificate_of_one_tenant_into_another_that_shares_its_CA()
    {
        // gamma trusts the server-wide CA, which also issued sam's OU=shared certificate (for delta and epsilon). A
        // gateway's terminate route for gamma that trusts that CA verifies sam; the server must still refuse him.
        AssertRefused(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: FromGateway(world.SharedCert))), AuthOutcome.WrongTenant, "certificate is not valid for this group");
        // And a certificate from a CA gamma does not trust at all, whatever the gateway said.
        AssertRefused(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: FromGateway(world.AliceCert))), AuthOutcome.BadCertificate, "certificate not issued by a CA this group trusts");
    }

    [Fact]
    public void A_certificate_the_gateway_did_not_verify_or_did_not_forward_is_refused_with_the_reason()
    {
        AssertRefused(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: FromGateway(world.CarolCert, verified: false))),
            AuthOutcome.BadCertificate, "the gateway could not verify the client certificate");
        AssertRefused(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: FromGateway(world.CarolCert, forwarded: false))),
            AuthOutcome.BadCertificate, "the gateway did not forward the client certificate, so no group can check it");
    }

    [Fact]
    public void A_malformed_forwarded_certificate_is_refused_and_no_certificate_means_none()
    {
        var ssl = new ProxySslInfo(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection, 0, CommonName: "carol");
        var garbage = ProxyListener.Certificate(new ProxyHeader(ProxyCommand.Proxy, null, null, "vpn.gamma.example", ssl, ClientCertificate: [0x30, 0x03, 1, 2, 3]));
        AssertRefused(Auth.Decide(Init(), "/", Peer("vpn.gamma.example", info: garbage)), AuthOutcome.BadCertificate, "the gateway forwarded a malformed client certificate");
        Assert.Null(ProxyListener.Certificate(new ProxyHeader(ProxyCommand.Proxy, null, null, "vpn.gamma.example", new ProxySslInfo(ProxyClientFlags.Ssl, 0))));
    }

    [Fact]
    public void Inspect_reads_the_OU_and_the_user_id()
    {
        var info = Authenticator.Inspect(world.AliceCert);
        Assert.Equal("alice", info.User);
        Assert.Equal(["alpha"], info.OrganizationalUnits);
        Assert.Null(info.Problem);
        Assert.Same(world.AliceCert, info.Raw);
    }

    // ---- The form --------------------------------------------------------------------------------------

    [Fact]
    public void The_group_list_is_offered_only_when_asked_and_puts_the_selected_group_first()
    {
        var withGroups = Auth.BuildForm("/auth", "Please log in.", null, withGroups: true, selected: "gamma");
        Assert.Equal(["gamma", "alpha", "beta", "delta", "epsilon"], withGroups.Select!.Options.Select(o => o.Value));
        Assert.All(withGroups.Select.Options, o => Assert.Equal(o.Value, o.Label));
        var fixedTenant = Auth.BuildForm("/alpha", "Please log in.", null, withGroups: false, selected: null);
        Assert.Null(fixedTenant.Select);
        Assert.Equal(["username", "password"], fixedTenant.Inputs.Select(i => i.Name));
    }

    [Theory]
    [InlineData("/", "")]
    [InlineData("/auth", "")]
    [InlineData("", "")]
    [InlineData("/alpha", "alpha")]
    [InlineData("/alpha/x/y", "alpha")]
    [InlineData("//alpha", "alpha")]
    [InlineData("/alpha?group=beta", "alpha")]
    [InlineData("/?x=/beta", "")]
    public void The_path_tenant_is_the_first_segment(string target, string expected)
    {
        Assert.Equal(expected, Authenticator.PathTenant(target));
    }

    // ---- Helpers ---------------------------------------------------------------------------------------

    // ---- The credential a cookie carries -------------------------------------------------------------

    /// <summary>
    /// A success names the credential it checked: the stored hash it verified the password against, or the
    /// certificate's serial. The cookie carries that, so a password changed (or a user removed) by a reload while the
    /// hash was being checked leaves a cookie that the next CONNECT refuses, never one stamped with the new hash or none.
    /// </summary>
    [Fact]
    public void A_success_carries_the_fingerprint_of_the_credential_it_checked()
    {
        var password = Auth.Decide(Reply("alice", TenantWorld.AlicePassword, "alpha"), "/alpha", Peer());
        AssertSuccess(password, "alpha", "alice");
        Assert.True(world.Tenants["alpha"].Passwords!.TryGetHash("alice", out var hash));
        Assert.Equal(Isotun.Security.CredentialStamp.ForPassword(hash), password.Credential);
        Assert.NotEqual(0UL, password.Credential);

        var certificate = Auth.Decide(Init(), "/", Peer(cert: world.AliceCert));
        AssertSuccess(certificate, "alpha", "alice");
        Assert.Equal(Isotun.Security.CredentialStamp.ForCertificate(world.AliceCert.SerialNumber), certificate.Credential);
    }

    [Fact]
    public void A_refusal_or_a_form_carries_no_credential()
    {
        Assert.Equal(0UL, Auth.Decide(Reply("alice", "wrong", "alpha"), "/alpha", Peer()).Credential);
        Assert.Equal(0UL, Auth.Decide(Init(), "/alpha", Peer()).Credential);
    }

    // ---- Throttling ------------------------------------------------------------------------------------

    [Theory]
    [InlineData("/alpha", null, null, "alice", "alpha/alice")]
    [InlineData("/", "beta", null, "bob", "beta/bob")]
    [InlineData("/", null, "vpn.gamma.example", "carol", "gamma/carol")]
    [InlineData("/gamma", null, "vpn.gamma.example", "carol", "gamma/carol")]
    public void Failures_count_per_user_under_the_tenant_the_login_resolves_to(string target, string? group, string? sni, string user, string key) =>
        Assert.Equal(key, Auth.ThrottleKey(Reply(user, "x", group), target, Peer(sni), out _));

    /// <summary>
    /// One account, one key, however the login spelt its tenant: with one tenant, "/" and "/alpha" count together (else
    /// a guesser gets twice the tries); a server name picks its tenant's key, so failures against one tenant's alice
    /// never ban another tenant's.
    /// </summary>
    [Fact]
    public void The_same_account_has_one_key_however_its_tenant_was_named()
    {
        var only = new Authenticator(new Dictionary<string, TenantRuntime> { ["alpha"] = world.Tenants["alpha"] }, null);
        Assert.Equal("alpha/alice", only.ThrottleKey(Reply("alice", "x"), "/", Peer(), out var tenant));
        Assert.Same(world.Tenants["alpha"], tenant);
        Assert.Equal("alpha/alice", only.ThrottleKey(Reply("alice", "x", "alpha"), "/", Peer(), out _));
        Assert.Equal("alpha/alice", only.ThrottleKey(Reply("alice", "x"), "/alpha", Peer(), out _));
        Assert.NotEqual(Auth.ThrottleKey(Reply("carol", "x"), "/", Peer("vpn.gamma.example"), out _), Auth.ThrottleKey(Reply("carol", "x", "beta"), "/", Peer(), out _));
    }

    /// <summary>
    /// A made-up name or group is no key, nor is a pick that contradicts itself or a login whose tenant is not chosen
    /// yet: the login fails (or gets a form) without a password checked, and counts for its source only, so a peer
    /// cannot fill the throttle's table (or a cluster's store) with keys of its own making, however long.
    /// </summary>
    [Theory]
    [InlineData("/alpha", null, null, "")]
    [InlineData("/alpha", null, null, "alice smith")]
    [InlineData("/alpha", null, null, "an-overlong-name-" + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
    [InlineData("/no-such-tenant", null, null, "alice")]
    [InlineData("/", "no-such-tenant", null, "alice")]
    [InlineData("/alpha", "beta", null, "alice")]
    [InlineData("/alpha", null, "vpn.gamma.example", "alice")]
    [InlineData("/", null, null, "alice")]
    public void A_login_naming_no_valid_user_of_one_known_tenant_has_no_user_key(string target, string? group, string? sni, string user) =>
        Assert.Null(Auth.ThrottleKey(Reply(user, "x", group), target, Peer(sni), out _));

    /// <summary>
    /// A name the tenant does not know (often a password typed into the user field) is not in its key as typed: its
    /// failures, and a cluster's copy of them, count under a keyed hash, the same for the same name in this process,
    /// another in another process; a known user's key is its name.
    /// </summary>
    [Fact]
    public void An_unknown_name_counts_under_a_keyed_hash_not_as_typed()
    {
        const string typed = "Hunter2-secret";
        var key = Auth.ThrottleKey(Reply(typed, "x"), "/alpha", Peer(), out _)!;
        Assert.StartsWith("alpha/?", key);
        Assert.DoesNotContain(typed, key, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(key, Auth.ThrottleKey(Reply(typed, "y"), "/alpha", Peer(), out _));
        Assert.NotEqual(key, Auth.ThrottleKey(Reply(typed + "2", "x"), "/alpha", Peer(), out _));
        var another = new Authenticator(world.Tenants, null);
        Assert.NotEqual(key, another.ThrottleKey(Reply(typed, "x"), "/alpha", Peer(), out _));
        Assert.Equal("alpha/alice", another.ThrottleKey(Reply("alice", "x"), "/alpha", Peer(), out _));
    }

    [Fact]
    public void A_name_of_a_thousand_characters_has_no_user_key() =>
        Assert.Null(Auth.ThrottleKey(Reply(new string('a', 1100), "x"), "/alpha", Peer(), out _));

    /// <summary>
    /// A certificate login logs in as its certificate's user, whatever name it sends: that name gets no key, so a holder
    /// of any certificate cannot clear another user's failures with it, nor be locked out by them.
    /// </summary>
    [Fact]
    public void A_certificate_login_has_no_user_key() =>
        Assert.Null(Auth.ThrottleKey(Reply("bob", null, "alpha"), "/alpha", Peer(cert: world.AliceCert), out _));

    private static ClientAuthMessage Reply(string user, string? password, string? group = null)
    {
        var fields = new Dictionary<string, string> { ["username"] = user };
        if (password is not null) fields["password"] = password;
        return new ClientAuthMessage("auth-reply", "v9.01", null, group, fields, null, false);
    }

    private static ClientAuthMessage Init(string? group = null) =>
        new("init", "v9.01", "https://vpn/", group, new Dictionary<string, string>(), null, false);

    private static PeerInfo Peer(string? sni = null, X509Certificate2? cert = null, ClientCertificateInfo? info = null) =>
        new(null, sni, info ?? (cert is null ? null : Authenticator.Inspect(cert)));

    private static void AssertSuccess(AuthDecision d, string tenant, string user)
    {
        Assert.True(d.Success, $"{d.Outcome}: {d.Message}");
        Assert.False(d.ShowForm);
        Assert.Equal(tenant, d.Tenant!.Name);
        Assert.Equal(user, d.User);
    }

    private static void AssertRefused(AuthDecision d, AuthOutcome outcome, string message)
    {
        Assert.Equal(outcome, d.Outcome);
        Assert.False(d.Success);
        Assert.False(d.ShowForm);
        Assert.Null(d.User);
        Assert.Equal(message, d.Message);
        // A refusal names no tenant at all: not the one asked for, and above all no other.
        foreach (var name in TenantWorld.TenantNames)
            Assert.DoesNotContain(name, d.Message, StringComparison.OrdinalIgnoreCase);
    }
}
