using System.Net;

namespace Isotun.Server;

/// <summary>
/// Who is on the other end of a connection, as far as the transport knows it: the client's address,
/// the TLS server name it asked for, and its certificate identity. For a direct TLS listener these come
/// from the handshake; behind an edge gateway they come from the PROXY v2 header.
/// </summary>
public sealed record PeerInfo(IPEndPoint? Remote, string? ServerName, ClientCertificateInfo? Certificate);

/// <summary>
/// A client certificate as the authenticator needs it. With <see cref="Raw"/> (a direct TLS handshake) the
/// authenticator checks the chain itself against the chosen tenant's CA; without it (behind a gateway)
/// <see cref="Verified"/> says whether the trusted gateway verified it.
/// </summary>
public sealed record ClientCertificateInfo(string? User, IReadOnlyList<string> OrganizationalUnits, bool Verified, string? Problem)
{
    public System.Security.Cryptography.X509Certificates.X509Certificate2? Raw { get; init; }
}
