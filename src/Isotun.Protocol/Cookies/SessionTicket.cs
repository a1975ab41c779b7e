namespace Isotun.Protocol.Cookies;

/// <summary>
/// What the <c>webvpn</c> cookie proves: an authenticated session of <see cref="User"/> in <see cref="Tenant"/>.
/// <see cref="ExpiresAt"/> is carried with one-second precision.
/// </summary>
public sealed record SessionTicket(Guid SessionId, string Tenant, string User, DateTimeOffset ExpiresAt);
