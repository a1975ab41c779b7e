namespace Isotun.Protocol.Auth;

/// <summary>
/// A client's config-auth document. <see cref="Type"/> is the <c>type</c> attribute ("init", "auth-reply", "logout", ...).
/// <see cref="Fields"/> maps each child of <c>&lt;auth&gt;</c> by local name to its text (first occurrence wins).
/// <see cref="Opaque"/> is the outer XML of <c>&lt;opaque&gt;</c>, which clients echo back verbatim.
/// </summary>
public sealed record ClientAuthMessage(
    string Type,
    string? Version,
    string? GroupAccess,
    string? GroupSelect,
    IReadOnlyDictionary<string, string> Fields,
    string? Opaque,
    bool ClientCertFail)
{
    /// <summary>The <c>&lt;username&gt;</c> field, if sent.</summary>
    public string? Username => Fields.TryGetValue("username", out var v) ? v : null;

    /// <summary>The <c>&lt;password&gt;</c> field, if sent.</summary>
    public string? Password => Fields.TryGetValue("password", out var v) ? v : null;
}
