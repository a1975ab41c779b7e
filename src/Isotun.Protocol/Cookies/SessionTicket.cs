namespace Isotun.Protocol.Cookies;

/// <summary>
/// What the <c>webvpn</c> cookie proves: an authenticated session of <see cref="User"/> in <see cref="Tenant"/>.
/// <see cref="ExpiresAt"/> is carried with one-second precision. <see cref="Credential"/> is a fingerprint of the
/// stored password hash the login was checked against (0 for a certificate login), so a cookie dies with a removed user
/// or a changed password.
/// </summary>
public sealed record SessionTicket(Guid SessionId, string Tenant, string User, DateTimeOffset ExpiresAt, ulong Credential = 0);
