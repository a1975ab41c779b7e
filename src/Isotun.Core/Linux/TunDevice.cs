using System.Runtime.InteropServices;
using Isotun.Tun;

namespace Isotun.Linux;

/// <summary>
/// A layer-3 TUN device opened through /dev/net/tun (IFF_TUN | IFF_NO_PI): one read is one IP packet.
/// The device is non-blocking: <see cref="Read"/> takes what is waiting, and the dedicated thread that serves a queue
/// waits in <see cref="WaitReadable"/>, in an epoll set of the device and an eventfd that <see cref="Interrupt"/> signals
/// (closing the fd does not wake a waiting thread), with no timeout: an idle queue costs no wake-ups. The set, not a
/// poll() of the two, lets <see cref="SuppressWakeups"/> take the device out of the wait for a while without waking it.
/// </summary>
public sealed unsafe class TunDevice : ITunQueue
{
    private const nuint TUNSETIFF = 0x400454ca;
    private const nuint TUNSETOFFLOAD = 0x400454d0;
    private const short IFF_TUN = 0x0001;
    private const short IFF_NO_PI = 0x1000;
    private const short IFF_VNET_HDR = 0x4000;
    private const short IFF_MULTI_QUEUE = 0x0100;
    private const nuint TUN_F_CSUM = 0x01, TUN_F_TSO4 = 0x02, TUN_F_TSO6 = 0x04, TUN_F_USO4 = 0x20, TUN_F_USO6 = 0x40;

    /// <summary>Largest super-packet the kernel may hand us, so header + packet fit one 64 KiB frame.</summary>
    public const int GsoMaxSize = ITunQueue.GsoMaxSize;
    private const int IfNameSize = 16;
    private const int IfReqSize = 40;

    private int _fd;
    // Signalled by Interrupt: a reader waits on it beside the device, with no timeout (made with the device, so that
    // its number cannot be reused while a reader may poll it; closed at Dispose).
    private readonly int _interrupt;
    // The epoll set the reader waits in: the device (its events switched off while wake-ups are suppressed) and the
    // interrupt. Made with the device and closed at Dispose, as the interrupt.
    private readonly int _epoll;
    private readonly Lock _suppressLock = new();
    private int _suppressed;

    private TunDevice(int fd, string name, bool offload, bool uso)
    {
        _fd = fd;
        _interrupt = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_interrupt < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            throw new TunException($"eventfd for {name}: {Libc.ErrorText(errno)}");
        }
        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll < 0 || !Watch(Libc.EPOLL_CTL_ADD, fd, Libc.EPOLLIN) || !Watch(Libc.EPOLL_CTL_ADD, _interrupt, Libc.EPOLLIN))
        {
            int errno = Marshal.GetLastPInvokeError();
            if (_epoll >= 0) Libc.close(_epoll);
            Libc.close(_interrupt);
            Libc.close(fd);
            throw new TunException($"epoll for {name}: {Libc.ErrorText(errno)}");
        }
        Name = name;
        Offload = offload;
        Uso = uso;
    }

    public string Name { get; }

    /// <summary>Set by whoever runs `ip link set mtu` on it (the tenant namespace, the client's set-up).</summary>
    public int Mtu { get; internal set; }

    /// <summary>
    /// Opened with IFF_VNET_HDR and TSO4/TSO6 offloads: every read and write starts with a 10-byte
    /// virtio_net_hdr, and reads may return TCP super-packets of up to <see cref="GsoMaxSize"/> bytes.
    /// </summary>
    public bool Offload { get; }

    /// <summary>
    /// Also UDP segmentation offload (kernels from 6.2): reads may return UDP super-packets (gso_type UDP_L4), and
    /// the kernel takes them whole. Without it, UDP super-packets must be cut before they are written here.
    /// </summary>
    public bool Uso { get; }

    /// <summary>
    /// Opens <paramref name="count"/> queues of one TUN device (IFF_MULTI_QUEUE when more than one): each is its
    /// own fd, read by its own thread. The kernel spreads outgoing packets over the queues by flow, and keeps a
    /// flow on the queue its packets were last written from. All queues share one set of flags and offloads.
    /// </summary>
    public static TunDevice[] OpenQueues(string name, bool offload, int count)
    {
        if (count is < 1 or > 256) throw new ArgumentOutOfRangeException(nameof(count), "a TUN has 1..256 queues");
        if (count == 1) return [Open(name, offload)];
        var queues = new TunDevice[count];
        try
        {
            for (int i = 0; i < count; i++)
                queues[i] = Open(i == 0 ? name : queues[0].Name, offload, multiQueue: true);
            return queues;
        }
        catch
        {
            foreach (var q in queues) q?.Dispose();
            throw;
        }
    }

    /// <summary>Creates (or attaches to) the TUN device <paramref name="name"/> in the calling thread's network namespace.</summary>
    public static TunDevice Open(string name, bool offload = false, bool multiQueue = false)
    {
        if (string.IsNullOrEmpty(name) || name.Length >= IfNameSize)
            throw new ArgumentException($"TUN name '{name}' must be 1..15 characters", nameof(name));
        if (!File.Exists("/dev/net/tun"))
            throw new TunException("/dev/net/tun does not exist (is the tun module loaded?)");

        // Non-blocking: a read under load is one syscall; poll() is only needed when the queue is empty.
        int fd = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC | Libc.O_NONBLOCK);
        if (fd < 0)
            throw new TunException($"open /dev/net/tun: {Libc.ErrorText(Marshal.GetLastPInvokeError())}");

        byte* ifr = stackalloc byte[IfReqSize];
        new Span<byte>(ifr, IfReqSize).Clear();
        int n = System.Text.Encoding.ASCII.GetBytes(name, new Span<byte>(ifr, IfNameSize - 1));
        *(short*)(ifr + IfNameSize) = (short)(IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0) | (multiQueue ? IFF_MULTI_QUEUE : 0));
        if (Libc.ioctl(fd, TUNSETIFF, ifr) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            throw new TunException($"TUNSETIFF {name}: {Libc.ErrorText(errno)}" + (errno == 1 ? " — needs CAP_NET_ADMIN (run as root)" : ""));
        }
        string actual = System.Text.Encoding.ASCII.GetString(new ReadOnlySpan<byte>(ifr, IfNameSize)).TrimEnd('\0');
        // TSO, and USO where the kernel has it (EINVAL before 6.2); never UFO or ECN: the peer's headers are
        // validated for exactly these types.
        bool uso = false;
        if (offload)
        {
            const nuint tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
            uso = Libc.ioctl(fd, TUNSETOFFLOAD, (void*)(tso | TUN_F_USO4 | TUN_F_USO6)) >= 0;
            if (!uso && Libc.ioctl(fd, TUNSETOFFLOAD, (void*)tso) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                Libc.close(fd);
                throw new TunException($"TUNSETOFFLOAD {name}: {Libc.ErrorText(errno)}");
            }
        }
        return new TunDevice(fd, actual.Length > 0 ? actual : name, offload, uso);
    }

    /// <summary>Reads the packets already waiting, one read each (a batch of one is a single read); see <see cref="ITunQueue.Read"/>.</summary>
    public int Read(ReadOnlySpan<Memory<byte>> bufs, Span<int> sizes, int offset)
    {
        int count = 0;
        while (count < bufs.Length)
        {
            int n = ReadOne(bufs[count].Span[offset..]);
            if (n < 0) return count > 0 ? count : -1;
            if (n == 0) break;
            sizes[count++] = n;
        }
        return count;
    }

    /// <summary>Reads one packet: its length, 0 when none is waiting, or -1 when the device is closed.</summary>
    private int ReadOne(Span<byte> buffer)
    {
        int fd = Volatile.Read(ref _fd);
        if (fd < 0) return -1;
        fixed (byte* p = buffer)
        {
            while (true)
            {
                nint r = Libc.read(fd, p, (nuint)buffer.Length);
                if (r >= 0) return (int)r;
                int errno = Marshal.GetLastPInvokeError();
                if (Volatile.Read(ref _fd) < 0) return -1;
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.EAGAIN) return 0;
                throw new TunException($"read {Name}: {Libc.ErrorText(errno)}");
            }
        }
    }

    /// <summary>epoll_wait alone, on the device and the interrupt; see <see cref="ITunQueue.WaitReadable"/>.</summary>
    public bool WaitReadable(int timeoutMs)
    {
        if (Volatile.Read(ref _fd) < 0) return true;
        byte* events = stackalloc byte[2 * Libc.EpollEventSize];
        return Libc.epoll_wait(_epoll, events, 2, timeoutMs) != 0;
    }

    /// <summary>
    /// Switches the device's events off in the epoll set, or on again; see <see cref="ITunQueue.SuppressWakeups"/>.
    /// Switching them on looks at the device at once, so a packet that came meanwhile wakes the waiting reader then.
    /// </summary>
    public void SuppressWakeups(bool suppress)
    {
        // Counted, for connections of the queue that overlap; under a lock, so the last switch made is the one counted.
        lock (_suppressLock)
        {
            _suppressed += suppress ? 1 : -1;
            if (_suppressed != (suppress ? 1 : 0)) return;
            int fd = Volatile.Read(ref _fd);
            if (fd >= 0) Watch(Libc.EPOLL_CTL_MOD, fd, suppress ? 0 : Libc.EPOLLIN);
        }
    }

    private bool Watch(int op, int fd, uint events)
    {
        byte* ev = stackalloc byte[Libc.EpollEventSize];
        new Span<byte>(ev, Libc.EpollEventSize).Clear();
        *(uint*)ev = events;
        return Libc.epoll_ctl(_epoll, op, fd, ev) == 0;
    }

    public void Interrupt()
    {
        ulong one = 1;
        Libc.write(_interrupt, (byte*)&one, sizeof(ulong)); // stays readable: later waits end at once too
    }

    /// <summary>Writes each packet with its own write; see <see cref="ITunQueue.Write"/>.</summary>
    public int Write(ReadOnlySpan<ReadOnlyMemory<byte>> bufs, int offset)
    {
        int written = 0;
        foreach (var packet in bufs)
            if (WriteOne(packet.Span[offset..])) written++;
        return written;
    }

    /// <summary>Writes one packet. Returns false when the kernel refused it (counted by the caller as a drop).</summary>
    private bool WriteOne(ReadOnlySpan<byte> packet)
    {
        int fd = Volatile.Read(ref _fd);
        if (fd < 0) return false;
        fixed (byte* p = packet)
        {
            for (int attempt = 0; attempt < 3; attempt++)
            {
                nint r = Libc.write(fd, p, (nuint)packet.Length);
                if (r == packet.Length) return true;
                if (r >= 0) return false;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno != Libc.EAGAIN) return false;
                Libc.PollFd pfd = new() { Fd = fd, Events = Libc.POLLOUT };
                Libc.poll(&pfd, 1, 100);
            }
            return false;
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0) return;
        Libc.close(fd);
        Libc.close(_interrupt);
        Libc.close(_epoll);
    }
}
