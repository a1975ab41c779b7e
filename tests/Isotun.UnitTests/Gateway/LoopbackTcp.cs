using System.Net;
using System.Net.Sockets;

namespace Isotun.UnitTests.Gateway;

/// <summary>Loopback TCP for tests: connected pairs of real sockets, and free ports.</summary>
internal static class LoopbackTcp
{
    /// <summary>A loopback port nothing listens on now (bound and let go: the kernel does not hand it out again at once).</summary>
    public static int FreePort()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
    }

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
