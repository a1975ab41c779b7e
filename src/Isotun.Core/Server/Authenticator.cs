using System.Security.Cryptography.X509Certificates;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Protocol.Auth;
using Isotun.Security;

namespace Isotun.Server;

/// <summary>The outcome of one auth request: a form to show, a refusal, or a logged-in user.</summary>
public sealed record AuthDecision(AuthOutcome Outcome, TenantRuntime? Tenant, string? User, string Message, bool ShowForm)
{
    public bool Success => Outcome == AuthOutcome.Ok && Tenant is not null && User is not null;
}

/// <summary>
/// Picks the tenant (URL path, then group select, then certificate OU, then the only tenant) and checks
/// the credentials against that tenant alone, so a user of one tenant can never log into another.
/// Refusals say what failed without naming anything of another tenant.
/// </summary>
public sealed class Authenticator(IReadOnlyDictionary<string, TenantRuntime> tenants, X509Certificate2Collection? clientCas)
{
    public bool CertificateAuthEnabled => clientCas is { Count: > 0 };

    /// <summary>Checks a certificate from a direct TLS handshake against the client CA.</summary>
    public ClientCertificateInfo Inspect(X509Certificate2 cert)
    {
        var ous = CertificateIdentity.OrganizationalUnits(cert);
        string? user = CertificateIdentity.UserId(cert) ?? cert.GetNameInfo(X509NameType.SimpleName, false);
        if (!CertificateAuthEnabled) return new ClientCertificateInfo(user, ous, false, "certificate auth is not enabled");
        return ChainsToClientCa(cert)
            ? new ClientCertificateInfo(user, ous, true, null)
            : new ClientCertificateInfo(user, ous, false, "certificate not issued by this server's client CA");
    }

    public IReadOnlyDictionary<string, TenantRuntime> Tenants => tenants;

    /// <summary>The tenant named by the first segment of the request path, "" when the path names none.</summary>
    public static string PathTenant(string target)
    {
        var path = target.Split('?', 2)[0].Trim('/');
        if (path.Length == 0 || path == "auth") return "";
        return path.Split('/', 2)[0];
    }

    public AuthDecision Decide(ClientAuthMessage msg, string target, PeerInfo peer)
    {
        string pathTenant = PathTenant(target);
        string? named = pathTenant.Length > 0 ? pathTenant : msg.GroupSelect;
        if (pathTenant.Length > 0 && !string.IsNullOrEmpty(msg.GroupSelect) && msg.GroupSelect != pathTenant)
            return Refuse(AuthOutcome.WrongTenant, null, "the group does not match the URL");

        TenantRuntime? tenant = null;
        if (!string.IsNullOrEmpty(named) && !tenants.TryGetValue(named, out tenant))
            return Refuse(AuthOutcome.UnknownTenant, null, "unknown group");

        // Certificate auth: a verified certificate logs in without a password.
        if (peer.Certificate is { } cert)
        {
            if (!cert.Verified)
                return Refuse(AuthOutcome.BadCertificate, tenant, cert.Problem ?? "certificate not verified");
            var ous = cert.OrganizationalUnits;
            if (tenant is null)
            {
                var matches = ous.Where(tenants.ContainsKey).Distinct().ToList();
                if (matches.Count == 1) tenant = tenants[matches[0]];
                else if (matches.Count == 0) return Refuse(AuthOutcome.WrongTenant, null, "certificate names no group of this server");
                else return Form(null, "choose a group");
            }
            if (!ous.Contains(tenant.Name))
                return Refuse(AuthOutcome.WrongTenant, tenant, "certificate is not valid for this group");
            if (string.IsNullOrEmpty(cert.User) || !PasswordFile.IsValidUserName(cert.User))
                return Refuse(AuthOutcome.BadCertificate, tenant, "certificate carries no usable user id");
            return new AuthDecision(AuthOutcome.Ok, tenant, cert.User, "ok", false);
        }

        if (tenant is null && tenants.Count == 1) tenant = tenants.Values.First();

        string? username = msg.Username, password = msg.Password;
        if (msg.Type != "auth-reply" || string.IsNullOrEmpty(username) || password is null)
            return Form(tenant, "Please enter your username and password.");
        if (tenant is null)
            return Form(null, "Please choose a group.");
        if (!PasswordFile.IsValidUserName(username))
            return Refuse(AuthOutcome.BadRequest, tenant, "login failed");
        if (tenant.Passwords is null || !tenant.Passwords.TryGetHash(username, out var hash))
        {
            PasswordHasher.VerifyDummy(password);
            return Refuse(AuthOutcome.UnknownUser, tenant, "login failed");
        }
        if (!PasswordHasher.Verify(password, hash))
            return Refuse(AuthOutcome.BadPassword, tenant, "login failed");
        return new AuthDecision(AuthOutcome.Ok, tenant, username, "ok", false);
    }

    private bool ChainsToClientCa(X509Certificate2 cert)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(clientCas!);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2"));
        return chain.Build(cert);
    }

    private static AuthDecision Refuse(AuthOutcome outcome, TenantRuntime? tenant, string message) =>
        new(outcome, tenant, null, message, false);

    private static AuthDecision Form(TenantRuntime? tenant, string message) =>
        new(AuthOutcome.Ok, tenant, null, message, true);

    /// <summary>The login form. The group list is left out when the URL already fixed the tenant.</summary>
    public AuthForm BuildForm(string action, string message, string? error, bool withGroups, string? selected)
    {
        var inputs = new List<AuthInput> { new("text", "username", "Username:"), new("password", "password", "Password:") };
        AuthSelect? select = null;
        if (withGroups)
        {
            var names = tenants.Keys.Order(StringComparer.Ordinal).ToList();
            if (selected is not null && names.Remove(selected)) names.Insert(0, selected);
            // label == value: openconnect's --authgroup matches the label.
            select = new AuthSelect("group_list", "Group:", names.Select(n => new AuthOption(n, n)).ToList());
        }
        return new AuthForm(action, message, error, inputs, select);
    }
}
