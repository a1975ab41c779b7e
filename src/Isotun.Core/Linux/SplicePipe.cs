namespace Isotun.Linux;

/// <summary>
/// A pipe that carries bytes from one socket to another inside the kernel with <c>splice(2)</c>: the pages move from the
/// first socket's receive queue into the pipe and from the pipe onto the second socket's send queue, and are never
/// copied through user space. Both ends are nonblocking; every call reports errors as an errno, not an exception.
/// </summary>
internal sealed unsafe class SplicePipe : IDisposable
{
    /// <summary>The capacity asked for: larger than the default 64 KiB, so that one call moves more. When the kernel
    /// refuses it (an unprivileged user over its pipe quota), the pipe keeps the size it was given.</summary>
    public const int PreferredCapacity = 256 * 1024;

    private int _read = -1;
    private int _write = -1;

    private SplicePipe(int read, int write)
    {
        _read = read;
        _write = write;
        _ = Libc.fcntl(write, Libc.F_SETPIPE_SZ, PreferredCapacity); // refused: the default size works as well
        int size = Libc.fcntl(write, Libc.F_GETPIPE_SZ, 0);
        Capacity = size > 0 ? size : 4096;
    }

    /// <summary>How many bytes the pipe holds at most.</summary>
    public int Capacity { get; }

    /// <summary>A new pipe, or null (and the errno) when none can be made (out of file descriptors, say).</summary>
    public static SplicePipe? TryCreate(out int errno)
    {
        int* fds = stackalloc int[2];
        if (Libc.pipe2(fds, Libc.O_NONBLOCK | Libc.O_CLOEXEC) != 0)
        {
            errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            return null;
        }
        errno = 0;
        return new SplicePipe(fds[0], fds[1]);
    }

    /// <summary>Moves up to <paramref name="count"/> bytes from the socket <paramref name="fd"/> into the pipe: the bytes
    /// moved, 0 at the socket's end of stream, or -errno (<c>-EAGAIN</c> when it has nothing yet).</summary>
    public long From(int fd, int count) => Splice(fd, _write, count);

    /// <summary>Moves up to <paramref name="count"/> bytes from the pipe onto the socket <paramref name="fd"/>: the bytes
    /// moved, or -errno (<c>-EAGAIN</c> when the socket has no room).</summary>
    public long To(int fd, int count) => Splice(_read, fd, count);

    /// <summary>Reads what the pipe holds into <paramref name="buffer"/>: the bytes read, or -errno.</summary>
    public long Read(Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                long n = Libc.read(_read, p, (nuint)buffer.Length);
                if (n >= 0) return n;
                int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR) return -errno;
            }
        }
    }

    private static long Splice(int from, int to, int count)
    {
        while (true)
        {
            long n = Libc.splice(from, null, to, null, (nuint)count, Libc.SPLICE_F_MOVE | Libc.SPLICE_F_NONBLOCK);
            if (n >= 0) return n;
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR) return -errno;
        }
    }

    public void Dispose()
    {
        if (_read >= 0) Libc.close(_read);
        if (_write >= 0) Libc.close(_write);
        _read = _write = -1;
    }
}
