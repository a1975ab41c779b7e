namespace Isotun.Protocol.Cookies;

/// <summary>Outcome of <see cref="CookieSealer.TryOpen"/>.</summary>
public enum CookieOpenResult
{
    /// <summary>Authentic and not expired.</summary>
    Ok,

    /// <summary>Not a cookie of ours: wrong length, encoding or version.</summary>
    Malformed,

    /// <summary>Well-formed but fails authentication (modified, or sealed with another key).</summary>
    Tampered,

    /// <summary>Authentic but <see cref="SessionTicket.ExpiresAt"/> has passed.</summary>
    Expired,
}
