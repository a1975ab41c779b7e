namespace Isotun.Protocol.Auth;

/// <summary>
/// The login form of an auth-request. <see cref="Action"/> is where the client POSTs its reply.
/// A form with an <see cref="Error"/> and no inputs signals a failed login.
/// </summary>
public sealed record AuthForm(string Action, string? Message, string? Error, IReadOnlyList<AuthInput> Inputs, AuthSelect? Select);
