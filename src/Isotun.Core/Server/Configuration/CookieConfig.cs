namespace Isotun.Server.Configuration;

/// <summary>
/// The key file that seals session cookies, how long a cookie stays valid, and how often a new key takes over
/// (<see cref="RotateEvery"/>; older keys still open the cookies they sealed until those expire).
/// </summary>
public sealed record CookieConfig(string KeyFile, TimeSpan Lifetime)
{
    /// <summary>How far another node's clock may run ahead of this one's, for the cookie times worked out here.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    public TimeSpan RotateEvery { get; init; } = TimeSpan.FromHours(ServerConfigLoader.DefaultCookieRotateHours);

    /// <summary>The latest a cookie issued at <paramref name="now"/> may end, give or take <see cref="ClockSkew"/>.</summary>
    public DateTimeOffset LatestEnd(DateTimeOffset now) => now + Lifetime + ClockSkew;

    /// <summary>
    /// Before this, at <paramref name="now"/>, no cookie issued then is valid any more, give or take <see cref="ClockSkew"/>:
    /// a user's enabling from before it keeps nothing out.
    /// </summary>
    public DateTimeOffset NoneValidFromBefore(DateTimeOffset now) => now - Lifetime - ClockSkew;
}
