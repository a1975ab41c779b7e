using System.Net;

namespace Isotun.Server;

/// <summary>
/// Who is on the other end of a connection, as far as the transport knows it: the client's address,
/// the TLS server name it asked for, and its certificate identity. For a direct TLS listener these come
/// from the handshake; behind an edge gateway they come from the PROXY v2 header.
/// </summary>
public sealed record PeerInfo(IPEndPoint? Remote, string? ServerName, ClientCertificateInfo? Certificate);

/// <summary>
/// A client certificate as the authenticator needs it: the certificate itself (<see cref="Raw"/>), whose chain and OU
/// the authenticator checks against the chosen tenant, and the user and OUs read from it. It came from a direct TLS
/// handshake, or from a trusted gateway that terminated TLS (in PROXY v2). <see cref="Problem"/> is set when the
/// certificate cannot be used at all (the gateway could not verify it, or did not forward it), and names why.
/// </summary>
public sealed record ClientCertificateInfo(string? User, IReadOnlyList<string> OrganizationalUnits, string? Problem)
{
    public System.Security.Cryptography.X509Certificates.X509Certificate2? Raw { get; init; }
}
