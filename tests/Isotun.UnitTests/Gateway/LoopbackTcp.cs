using System.Net;
using System.Net.Sockets;

namespace Isotun.UnitTests.Gateway;

/// <summary>Connected TCP sockets on loopback, for tests of what runs between two real sockets.</summary>
internal static class LoopbackTcp
{
    /// <summary>Both ends of one connection: the dialing end and the accepted one.</summary>
    public static (Socket Outer, Socket Inner) Pair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var outer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        outer.Connect(listener.LocalEndPoint!);
        return (outer, listener.Accept());
    }
}
