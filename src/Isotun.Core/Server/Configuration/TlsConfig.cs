using System.Net;

namespace Isotun.Server.Configuration;

/// <summary>
/// Server certificate and key (generated at first start when both files are missing), the optional client CA that enables
/// certificate authentication, and the name and IP SANs used when generating.
/// </summary>
public sealed record TlsConfig(string Certificate, string Key, string? ClientCa, string? ServerName, IReadOnlyList<IPAddress> GenerateIps);
