using System.Runtime.InteropServices;

namespace Isotun.Linux;

/// <summary>The few libc calls the data path needs. Everything else goes through iproute2.</summary>
internal static unsafe partial class Libc
{
    public const int O_RDWR = 0x2;
    public const int O_CLOEXEC = 0x80000;
    public const int O_NONBLOCK = 0x800;
    public const int O_RDONLY = 0x0;
    public const int CLONE_NEWNET = 0x40000000;
    public const short POLLIN = 0x1;
    public const short POLLOUT = 0x4;
    public const int EINTR = 4;
    public const int EAGAIN = 11;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    /// <summary>Sets a signal's disposition (0: the default, 1: ignored, else a handler); returns the one before.</summary>
    [LibraryImport("libc")]
    public static partial nint signal(int signum, nint handler);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint nfds, int timeout);

    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x1;

    /// <summary>
    /// Room for one struct epoll_event: its events mask first, then 8 bytes of data, packed on x86-64 (12 bytes) but
    /// not on arm64 (16). Only the mask is ever set or read here.
    /// </summary>
    public const int EpollEventSize = 16;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_wait(int epfd, byte* events, int maxEvents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc")]
    public static partial int geteuid();

    public const int AF_PACKET = 17;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_CLOEXEC = 0x80000;
    public const ushort ETH_P_ARP = 0x0806;
    public const nuint SIOCGIFHWADDR = 0x8927;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint sendto(int fd, byte* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint if_nametoindex(string name);

    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE = 0x1;
    private const int S_IFMT = 0xF000, S_IFSOCK = 0xC000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>
    /// Whether <paramref name="path"/> is a unix socket (not following a symbolic link); null when it cannot be told
    /// (it does not exist, or statx fails). Hand-written: .NET tells files and directories apart, not sockets. statx,
    /// not stat, since its struct is the same on every architecture: <c>stx_mode</c> is the 16 bits at offset 28.
    /// </summary>
    public static bool? IsSocket(string path)
    {
        byte* buffer = stackalloc byte[256];
        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, buffer) != 0) return null;
        return (*(ushort*)(buffer + 28) & S_IFMT) == S_IFSOCK;
    }

    private const uint STATX_CTIME = 0x80, STATX_INO = 0x100;

    /// <summary>
    /// The inode of <paramref name="path"/> (following a symbolic link) and the time of its last status change, in
    /// nanoseconds since the epoch; null when statx fails. The change time moves with every write and every chmod, and
    /// no one can set it back (`cp -p` and `touch -r` set the time of last write), so a file rewritten in place with its
    /// old time and size, or replaced by a rename, still reads as changed. <c>stx_ino</c> is at offset 32,
    /// <c>stx_ctime</c> (seconds, then nanoseconds) at 96.
    /// </summary>
    public static (ulong Inode, long Changed)? StatusChange(string path)
    {
        byte* buffer = stackalloc byte[256];
        if (statx(AT_FDCWD, path, 0, STATX_INO | STATX_CTIME, buffer) != 0) return null;
        return (*(ulong*)(buffer + 32), *(long*)(buffer + 96) * 1_000_000_000 + *(uint*)(buffer + 104));
    }

    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno) + $" (errno {errno})";
}
