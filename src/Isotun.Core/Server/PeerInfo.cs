using System.Net;

namespace Isotun.Server;

/// <summary>
/// Who is on the other end of a connection, as far as the transport knows it: the client's address,
/// the TLS server name it asked for, and its certificate identity. For a direct TLS listener these come
/// from the handshake; behind an edge gateway they come from the PROXY v2 header.
/// </summary>
public sealed record PeerInfo(IPEndPoint? Remote, string? ServerName, ClientCertificateInfo? Certificate);

/// <summary>
/// A client certificate as the authenticator needs it. <see cref="Verified"/> is true only when it chained
/// to a trusted client CA (checked here, or by a trusted gateway that said so).
/// </summary>
public sealed record ClientCertificateInfo(string? User, IReadOnlyList<string> OrganizationalUnits, bool Verified, string? Problem);
