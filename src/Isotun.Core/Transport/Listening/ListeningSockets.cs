using System.Net;
using System.Net.Sockets;

namespace Isotun.Transport.Listening;

/// <summary>
/// Opens a listener's address as one listening socket per core, all on the same port through <c>SO_REUSEPORT</c>: the
/// kernel spreads new connections over them by their addresses, and each socket's accept loop runs where its
/// completions run, so accepting (and whatever a handler does before its first wait) uses every core instead of one
/// thread. A port that any other socket already listens on is refused first (a plain bind, which fails with "address
/// already in use"): a second server started on the same port fails instead of quietly sharing the first one's
/// connections. (.NET's <c>ReuseAddress</c> option sets <c>SO_REUSEPORT</c> too on Linux, so listeners opened with it
/// shared their port with any later one of the same user; the options are set here one by one.)
/// </summary>
public static class ListeningSockets
{
    // Linux's SOL_SOCKET, SO_REUSEADDR and SO_REUSEPORT, set raw: SocketOptionName.ReuseAddress sets both.
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;
    private const int SoReusePort = 15;

    /// <summary>One per core: the runtime runs as many socket threads when its completions run inline.</summary>
    private static int DefaultCount => Math.Max(1, Environment.ProcessorCount);

    /// <summary>One per core (<see cref="DefaultCount"/>), with the listener and its address in the error an operator reads.</summary>
    public static Socket[] Open(string listener, IPEndPoint at, int backlog)
    {
        try
        {
            return Open(at, backlog, DefaultCount);
        }
        catch (SocketException e)
        {
            throw new IOException($"the {listener} cannot listen on {at}: {e.Message}", e);
        }
    }

    /// <summary>Binds and listens; on any error nothing stays open and the error is thrown.</summary>
    public static Socket[] Open(IPEndPoint at, int backlog, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (at.Port != 0) RefuseIfHeld(at);
        var sockets = new List<Socket>(count);
        try
        {
            var port = at.Port;
            for (int i = 0; i < count; i++)
            {
                var s = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(s);
                Set(s, SoReuseAddr);
                if (count > 1) Set(s, SoReusePort);
                s.Bind(new IPEndPoint(at.Address, port));
                s.Listen(backlog);
                port = ((IPEndPoint)s.LocalEndPoint!).Port; // with port 0, the rest join the port the first one got
            }
            return [.. sockets];
        }
        catch
        {
            foreach (var s in sockets) s.Dispose();
            throw;
        }
    }

    /// <summary>A socket without <c>SO_REUSEPORT</c> cannot bind where anything listens (<c>SO_REUSEADDR</c> only lets it
    /// pass connections left in TIME_WAIT), so this bind fails exactly when the port is taken, whoever took it.</summary>
    private static void RefuseIfHeld(IPEndPoint at)
    {
        using var probe = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        Set(probe, SoReuseAddr);
        probe.Bind(at);
    }

    private static void Set(Socket s, int option) => s.SetRawSocketOption(SolSocket, option, BitConverter.GetBytes(1));
}
