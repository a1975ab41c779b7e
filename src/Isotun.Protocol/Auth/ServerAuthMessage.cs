namespace Isotun.Protocol.Auth;

/// <summary>
/// A server's config-auth document. <see cref="Type"/> is "auth-request", "complete" or whatever the server sent.
/// <see cref="Form"/> is present when the server sent a form, a message or an error.
/// </summary>
public sealed record ServerAuthMessage(
    string Type,
    string? AuthId,
    AuthForm? Form,
    string? SessionToken,
    bool ClientCertRequest,
    string? Opaque,
    string? Banner);
