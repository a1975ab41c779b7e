using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Isotun.Logs;
using Isotun.Metrics;
using Isotun.Protocol.Cookies;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.Transport.Listening;

namespace Isotun.Server;

/// <summary>
/// What a client connection, the PROXY listener and the cluster's session publisher need of the server that accepted
/// them: its live config, TLS identity, logins, sessions and instruments. <see cref="VpnServer"/> is the one host; the
/// connections depend on this, not on it, so the server and what it runs do not depend on each other.
/// </summary>
internal interface IConnectionHost
{
    /// <summary>The live config (a reload swaps it).</summary>
    ServerConfig Config { get; }

    SslServerAuthenticationOptions TlsOptions { get; }
    X509Certificate2 ServerCertificate { get; }
    Authenticator Authenticator { get; }
    LoginThrottle Logins { get; }
    LoginGate LoginGate { get; }
    CookieSealer Cookies { get; }
    SessionRegistry Sessions { get; }
    IStateStore State { get; }
    IsotunMetrics Metrics { get; }
    LogThrottle LogThrottle { get; }

    /// <summary>The caps on open connections (global and per source), shared by the TLS and the PROXY listener.</summary>
    ConcurrencyCaps Caps { get; }

    /// <summary>The tenants as they are now.</summary>
    IReadOnlyCollection<TenantRuntime> TenantRuntimes { get; }

    /// <summary>A fresh connection id, shared by every listener so logs never reuse one.</summary>
    long NextConnectionId();

    /// <summary>Whether an operator revoked the user (here, or on any node of the cluster).</summary>
    bool IsRevoked(string tenant, string user);

    /// <summary>
    /// Whether a cookie's user may still connect: not revoked, with the password the cookie was issued under, or with
    /// a certificate its tenant still trusts as it did at <paramref name="loggedIn"/>.
    /// </summary>
    bool CredentialStillValid(TenantRuntime tenant, string user, ulong credential, DateTimeOffset loggedIn);

    /// <summary>Whether a cookie ends no later than one issued now would (<c>cookie.lifetime</c> from now).</summary>
    bool WithinCookieLifetime(SessionTicket ticket);
}
