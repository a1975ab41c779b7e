namespace Isotun.Tun;

/// <summary>
/// One queue of a layer-3 TUN device, as the data path sees it: batches of IP packets in and out, each led by a
/// 10-byte virtio-net header when <see cref="Offload"/> is on. <c>Linux.TunDevice</c> is the kernel's;
/// <see cref="MemoryTunQueue"/> is the in-memory twin that lets a whole server and client run in one process.
/// Reads never wait; each queue is served by a dedicated thread that waits in <see cref="WaitReadable"/>.
/// </summary>
public interface ITunQueue : IDisposable
{
    /// <summary>Largest super-packet a TUN with offloads hands over, so header + packet fit one 64 KiB frame.</summary>
    public const int GsoMaxSize = 65000;

    /// <summary>The interface name (all queues of one device share it).</summary>
    string Name { get; }

    /// <summary>The MTU the link was configured with; 0 before it was.</summary>
    int Mtu { get; }

    /// <summary>
    /// Packets carry a virtio_net_hdr, and reads may return TCP super-packets of up to <see cref="GsoMaxSize"/>
    /// bytes; writes may be super-packets too.
    /// </summary>
    bool Offload { get; }

    /// <summary>Also UDP super-packets (gso_type UDP_L4). Without it, UDP super-packets must be cut before they are written.</summary>
    bool Uso { get; }

    /// <summary>
    /// Reads up to <paramref name="bufs"/>.Length packets already waiting, packet i into bufs[i] from
    /// <paramref name="offset"/> on, its length in sizes[i]; it never waits (<see cref="WaitReadable"/> does). Returns how
    /// many were read, 0 when none was waiting, or -1 once the queue is closed.
    /// </summary>
    /// <exception cref="TunException">The device failed.</exception>
    int Read(ReadOnlySpan<Memory<byte>> bufs, Span<int> sizes, int offset);

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> (-1: for as long as it takes) until a packet can be read, the queue
    /// closes or fails, or <see cref="Interrupt"/> was called, and reads nothing: true when there is something for
    /// <see cref="Read"/> to say, or the wait was interrupted.
    /// </summary>
    bool WaitReadable(int timeoutMs);

    /// <summary>
    /// Ends a <see cref="WaitReadable"/> in progress, and every later one at once: for the thread that reads the queue
    /// to notice it is told to stop, without waking on a timeout while idle.
    /// </summary>
    void Interrupt();

    /// <summary>
    /// While suppressed (calls nest), a packet that arrives does not end a <see cref="WaitReadable"/> in progress;
    /// lifting the last suppression ends it at once when a packet is waiting. For a connection that writes into the
    /// queue and reads the answer its write caused itself: the waiting thread is then not woken for that answer.
    /// </summary>
    void SuppressWakeups(bool suppress);

    /// <summary>
    /// Writes bufs[i] from <paramref name="offset"/> on, one packet each. Returns how many the device took; a
    /// refused packet is not retried (the caller counts it as a drop) and the ones after it are still tried.
    /// </summary>
    int Write(ReadOnlySpan<ReadOnlyMemory<byte>> bufs, int offset);
}
