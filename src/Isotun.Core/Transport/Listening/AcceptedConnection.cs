using System.Net;
using System.Net.Sockets;

namespace Isotun.Transport.Listening;

/// <summary>A connection the listener admitted: its socket (owned by the listener, disposed when the handler returns), the peer and an id for logs.</summary>
public readonly record struct AcceptedConnection(Socket Socket, IPEndPoint Remote, long Id);
