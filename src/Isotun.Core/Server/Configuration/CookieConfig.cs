namespace Isotun.Server.Configuration;

/// <summary>
/// The key file that seals session cookies, how long a cookie stays valid, and how often a new key takes over
/// (<see cref="RotateEvery"/>; older keys still open the cookies they sealed until those expire).
/// </summary>
public sealed record CookieConfig(string KeyFile, TimeSpan Lifetime)
{
    public TimeSpan RotateEvery { get; init; } = TimeSpan.FromHours(ServerConfigLoader.DefaultCookieRotateHours);
}
