using System.Net;

namespace Isotun.Protocol.Proxy;

/// <summary>
/// A PROXY protocol v2 header: the command, the original TCP addresses (null for LOCAL, UNSPEC or AF_UNIX) and the
/// TLVs Isotun reads or writes. Unknown TLVs are skipped by the parser, as the specification asks.
/// <see cref="ClientCertificate"/> is the DER of the client's certificate (<see cref="ProxyV2.TypeClientCertificate"/>).
/// </summary>
public sealed record ProxyHeader(
    ProxyCommand Command,
    IPEndPoint? Source,
    IPEndPoint? Destination,
    string? Authority = null,
    ProxySslInfo? Ssl = null,
    string? Alpn = null,
    byte[]? UniqueId = null,
    byte[]? ClientCertificate = null)
{
    public static ProxyHeader Local() => new(ProxyCommand.Local, null, null);
}
