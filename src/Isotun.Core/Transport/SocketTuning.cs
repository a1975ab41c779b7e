using System.Net.Sockets;

namespace Isotun.Transport;

/// <summary>Socket options for tunnel connections on both ends.</summary>
public static class SocketTuning
{
    /// <summary>
    /// TCP_NODELAY: frames go out at once. TCP_NOTSENT_LOWAT (128 KiB): the kernel keeps little unsent data
    /// queued, so a bulk transfer does not add seconds of queueing delay in front of a ping.
    /// </summary>
    public static void Apply(Socket socket)
    {
        socket.NoDelay = true;
        try
        {
            socket.SetRawSocketOption(6 /* IPPROTO_TCP */, 25 /* TCP_NOTSENT_LOWAT */, BitConverter.GetBytes(128 * 1024));
        }
        catch (SocketException)
        {
            // Older kernels: latency under load is worse, nothing else changes.
        }
    }

    /// <summary>Bytes already in the kernel's receive queue: the next read will not wait.</summary>
    public static bool BytesWaiting(Socket socket)
    {
        try { return socket.Available > 0; }
        catch (Exception e) when (e is ObjectDisposedException or SocketException) { return false; }
    }
}
