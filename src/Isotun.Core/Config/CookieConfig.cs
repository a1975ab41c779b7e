namespace Isotun.Config;

/// <summary>The key file that signs session cookies and how long a cookie stays valid.</summary>
public sealed record CookieConfig(string KeyFile, TimeSpan Lifetime);
