using System.Net;

namespace Isotun.Server.Configuration;

/// <summary>
/// Server certificate and key (generated at first start when both files are missing), the optional client CA that enables
/// certificate authentication, the name and IP SANs used when generating, and the optional file that keeps the session
/// ticket key across restarts.
/// </summary>
public sealed record TlsConfig(string Certificate, string Key, string? ClientCa, string? ServerName, IReadOnlyList<IPAddress> GenerateIps)
{
    /// <summary>The session ticket key's file (created 0600 when missing); null: a key of this run only.</summary>
    public string? TicketKeyFile { get; init; }
}
