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

    /// <summary>
    /// For a success: the fingerprint of the credential that was checked (<see cref="CredentialStamp"/>), the very hash
    /// or certificate, for the cookie to carry. Taken from what was verified, not read again after: a reload that
    /// changes the password or removes the user while the hash is being checked must still kill this login's cookie.
    /// </summary>
    public ulong Credential { get; init; }
}

/// <summary>
/// Picks the tenant (URL path, group select, certificate OU, TLS server name, or the only tenant) and checks
/// the credentials against that tenant alone — its password file, its CA, its OUs — so a user of one tenant
/// can never log into another. Every refusal says what failed without naming anything of another tenant.
/// </summary>
public sealed class Authenticator(IReadOnlyDictionary<string, TenantRuntime> tenants, X509Certificate2Collection? serverCas)
{
    // Swapped whole when a reload adds or removes tenants; each decision reads one snapshot.
    private volatile IReadOnlyDictionary<string, TenantRuntime> _tenants = tenants;

    /// <summary>The tenant set after a reload added or removed tenants.</summary>
    internal void Replace(IReadOnlyDictionary<string, TenantRuntime> next) => _tenants = next;

    /// <summary>True when any CA is configured, server-wide or per tenant: the TLS listener then asks for certificates.</summary>
    public bool CertificateAuthEnabled => serverCas is { Count: > 0 } || _tenants.Values.Any(t => t.ClientCas is { Count: > 0 });

    public IReadOnlyDictionary<string, TenantRuntime> Tenants => _tenants;

    /// <summary>Reads the identity of a certificate from a direct TLS handshake; the chain is checked once the tenant is known.</summary>
    public static ClientCertificateInfo Inspect(X509Certificate2 cert)
    {
        var ous = CertificateIdentity.OrganizationalUnits(cert);
        string? user = CertificateIdentity.UserId(cert) ?? cert.GetNameInfo(X509NameType.SimpleName, false);
        return new ClientCertificateInfo(user, ous, null) { Raw = cert };
    }

    /// <summary>The tenant named by the first segment of the request path, "" when the path names none.</summary>
    public static string PathTenant(string target)
    {
        var path = target.Split('?', 2)[0].Trim('/');
        if (path.Length == 0 || path == "auth") return "";
        return path.Split('/', 2)[0];
    }

    /// <summary>
    /// The key a password login's failures count under per user (<see cref="LoginThrottle.UserKey"/>): the tenant the
    /// login resolves to (as <see cref="Decide"/> picks it, whether the URL path, the group, the server name or the only
    /// tenant there is named it) and the user name. Null when the request names no valid user name, picks no tenant here
    /// or picks one inconsistently: such a login fails (or gets a form) without a password being checked, and counts for
    /// its source only, so a peer can neither fill the throttle's table (or a cluster's store) with keys of its own
    /// making, nor spread one account's failures over several spellings, nor lock a user out of another tenant. Null for
    /// a certificate login too: the user name it sends is not what it logs in as, and must neither be locked out by it
    /// nor have its failures cleared by it. <paramref name="tenant"/> is the tenant of the key.
    /// </summary>
    public string? ThrottleKey(ClientAuthMessage msg, string target, PeerInfo peer, out TenantRuntime? tenant)
    {
        tenant = null;
        if (peer.Certificate is not null) return null;
        if (string.IsNullOrEmpty(msg.Username) || !PasswordFile.IsValidUserName(msg.Username)) return null;
        tenant = ChooseTenant(msg, target, peer, out var refusal);
        if (refusal is not null) return null;
        tenant ??= OnlyTenant();
        if (tenant is null) return null;
        // A name the tenant does not know (often a password typed into the user field) is neither kept nor shared with
        // a cluster's store as typed: its failures count under a keyed hash of it, which only this process can make.
        // It still gets a key, and so a ban, of its own: a guesser cannot tell unknown names from known ones by that.
        return LoginThrottle.UserKey(tenant.Name, tenant.Passwords?.TryGetHash(msg.Username, out _) == true ? msg.Username : UnknownName(msg.Username));
    }

    // Per process: the hashes are never compared with another process's, and a restart forgets them as it forgets the
    // throttle's counts.
    private readonly byte[] _unknownNameKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);

    /// <summary>"?" and a keyed hash of <paramref name="name"/>; no user name holds "?", so it names no real user.</summary>
    private string UnknownName(string name) =>
        "?" + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(_unknownNameKey, System.Text.Encoding.UTF8.GetBytes(name)).AsSpan(0, 12));

    public TenantRuntime? TenantForServerName(string? sni)
    {
        if (string.IsNullOrEmpty(sni)) return null;
        var name = sni.ToLowerInvariant();
        foreach (var t in _tenants.Values)
            if (t.Config.ServerNames.Contains(name)) return t;
        return null;
    }

    /// <summary>
    /// The tenant the URL path, the group or the server name picks; null when none does (then a certificate's OU or
    /// the only tenant there is may), or, with <paramref name="refusal"/>, when they disagree or name no tenant here.
    /// </summary>
    private TenantRuntime? ChooseTenant(ClientAuthMessage msg, string target, PeerInfo peer, out AuthDecision? refusal)
    {
        refusal = null;
        string pathTenant = PathTenant(target);
        string? named = pathTenant.Length > 0 ? pathTenant : msg.GroupSelect;
        if (pathTenant.Length > 0 && !string.IsNullOrEmpty(msg.GroupSelect) && msg.GroupSelect != pathTenant)
        {
            refusal = Refuse(AuthOutcome.WrongTenant, null, "the group does not match the URL");
            return null;
        }

        TenantRuntime? tenant = null;
        if (!string.IsNullOrEmpty(named) && !_tenants.TryGetValue(named, out tenant))
        {
            refusal = Refuse(AuthOutcome.UnknownTenant, null, "unknown group");
            return null;
        }
        // A tenant's own server name admits only that tenant: no crafted path or group gets past it.
        var bySni = TenantForServerName(peer.ServerName);
        if (tenant is not null && bySni is not null && bySni != tenant)
        {
            refusal = Refuse(AuthOutcome.WrongTenant, null, "the group does not match the server name");
            return null;
        }
        return tenant ?? bySni;
    }

    private TenantRuntime? OnlyTenant()
    {
        var tenants = _tenants;
        return tenants.Count == 1 ? tenants.Values.First() : null;
    }

    public AuthDecision Decide(ClientAuthMessage msg, string target, PeerInfo peer)
    {
        var tenant = ChooseTenant(msg, target, peer, out var refusal);
        if (refusal is not null) return refusal;

        if (peer.Certificate is { } cert)
            return DecideCertificate(cert, tenant);

        tenant ??= OnlyTenant();

        string? username = msg.Username, password = msg.Password;
        if (msg.Type != "auth-reply" || string.IsNullOrEmpty(username) || password is null)
            return Form(tenant, "Please enter your username and password.");
        if (tenant is null)
            return Form(null, "Please choose a group.");
        if (!PasswordFile.IsValidUserName(username))
            return Refuse(AuthOutcome.BadRequest, tenant, "login failed");
        if (tenant.Passwords is null || !tenant.Passwords.TryGetHash(username, out var hash))
        {
            PasswordHasher.VerifyDummy(password, tenant.Passwords?.UsualIterations ?? PasswordHasher.DefaultIterations);
            return Refuse(AuthOutcome.UnknownUser, tenant, "login failed");
        }
        if (!PasswordHasher.Verify(password, hash))
            return Refuse(AuthOutcome.BadPassword, tenant, "login failed");
        return new AuthDecision(AuthOutcome.Ok, tenant, username, "ok", false) { Credential = CredentialStamp.ForPassword(hash) };
    }

    /// <summary>Certificate auth: the certificate must chain to the tenant's CA and carry one of its OUs.</summary>
    private AuthDecision DecideCertificate(ClientCertificateInfo cert, TenantRuntime? tenant)
    {
        if (tenant is null)
        {
            var matches = _tenants.Values.Where(t => cert.OrganizationalUnits.Any(t.Config.EffectiveOus.Contains)).ToList();
            if (matches.Count == 1) tenant = matches[0];
            else if (matches.Count == 0) return Refuse(AuthOutcome.WrongTenant, null, "certificate names no group of this server");
            else return Form(null, "Please choose a group.");
        }
        // The same checks whether the certificate came in this server's own handshake or through a gateway that
        // terminated TLS: a gateway's verdict is never enough, since it may trust one CA for several tenants.
        if (cert.Problem is { } problem)
            return Refuse(AuthOutcome.BadCertificate, tenant, problem);
        var cas = tenant.ClientCas ?? serverCas;
        if (cas is not { Count: > 0 })
            return Refuse(AuthOutcome.BadCertificate, tenant, "certificate login is not enabled for this group");
        if (cert.Raw is not { } raw || !ClientCertificateCheck.ChainsTo(raw, cas))
            return Refuse(AuthOutcome.BadCertificate, tenant, "certificate not issued by a CA this group trusts");
        if (tenant.IsCertificateRevoked(raw.SerialNumber))
            return Refuse(AuthOutcome.BadCertificate, tenant, "certificate revoked");
        if (!cert.OrganizationalUnits.Any(tenant.Config.EffectiveOus.Contains))
            return Refuse(AuthOutcome.WrongTenant, tenant, "certificate is not valid for this group");
        if (string.IsNullOrEmpty(cert.User) || !PasswordFile.IsValidUserName(cert.User))
            return Refuse(AuthOutcome.BadCertificate, tenant, "certificate carries no usable user id");
        return new AuthDecision(AuthOutcome.Ok, tenant, cert.User, "ok", false) { Credential = CredentialStamp.ForCertificate(raw.SerialNumber) };
    }

    private static AuthDecision Refuse(AuthOutcome outcome, TenantRuntime? tenant, string message) =>
        new(outcome, tenant, null, message, false);

    private static AuthDecision Form(TenantRuntime? tenant, string message) =>
        new(AuthOutcome.Ok, tenant, null, message, true);

    /// <summary>The login form. The group list is left out when the URL or the server name already fixed the tenant.</summary>
    public AuthForm BuildForm(string action, string message, string? error, bool withGroups, string? selected)
    {
        var inputs = new List<AuthInput> { new("text", "username", "Username:"), new("password", "password", "Password:") };
        AuthSelect? select = null;
        if (withGroups)
        {
            var names = _tenants.Keys.Order(StringComparer.Ordinal).ToList();
            if (selected is not null && names.Remove(selected)) names.Insert(0, selected);
            // label == value: openconnect's --authgroup matches the label.
            select = new AuthSelect("group_list", "Group:", names.Select(n => new AuthOption(n, n)).ToList());
        }
        return new AuthForm(action, message, error, inputs, select);
    }
}
