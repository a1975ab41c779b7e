using System.Net;

namespace Isotun.Config;

/// <summary>One tenant: a group with its own pool, routes, DNS, tunnel parameters, users and TUN device.</summary>
/// <param name="Name">Group label and value; <c>[a-z0-9][a-z0-9-]{0,30}</c>.</param>
/// <param name="Pool">IPv4 CIDR in canonical form, e.g. <c>10.10.0.0/24</c>.</param>
/// <param name="Routes">Split-include CIDRs in canonical form; empty means the default route.</param>
/// <param name="Dns">DNS servers pushed to clients.</param>
/// <param name="Mtu">Tunnel MTU.</param>
/// <param name="Dpd">Dead peer detection interval, seconds.</param>
/// <param name="Keepalive">Keepalive interval, seconds.</param>
/// <param name="PasswordFile">Absolute path of the tenant's <see cref="Isotun.Security.PasswordFile"/>, or null.</param>
/// <param name="Device">TUN device name, at most 15 characters.</param>
public sealed record TenantConfig(
    string Name,
    string Pool,
    IReadOnlyList<string> Routes,
    IReadOnlyList<IPAddress> Dns,
    int Mtu,
    int Dpd,
    int Keepalive,
    string? PasswordFile,
    string Device);
