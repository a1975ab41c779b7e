using System.Net.Sockets;
using System.Text;

namespace Isotun.Linux;

/// <summary>
/// The receiving end of <see cref="SystemdNotify"/>: a unix datagram socket at a path, handed to a child process as
/// <c>$NOTIFY_SOCKET</c>, the way systemd supervises a <c>Type=notify</c> service. The lab waits on it for its
/// client's READY=1.
/// </summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket;

    public NotifySocket(string path)
    {
        if (File.Exists(path)) File.Delete(path);
        Path = path;
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(path));
        // Only this user (root) may tell us a process is ready.
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    public string Path { get; }

    /// <summary>The next message's "KEY=VALUE" lines, or null when none came within <paramref name="timeout"/>.</summary>
    public IReadOnlyDictionary<string, string>? Receive(TimeSpan timeout)
    {
        if (!_socket.Poll(timeout, SelectMode.SelectRead)) return null;
        var buffer = new byte[4096];
        int n = _socket.Receive(buffer);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Encoding.UTF8.GetString(buffer, 0, n).Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq > 0) fields[line[..eq]] = line[(eq + 1)..];
        }
        return fields;
    }

    /// <summary>Whether a message within <paramref name="timeout"/> says READY=1 (a poll, for a wait that also watches the process).</summary>
    public bool ReadyWithin(TimeSpan timeout) => Receive(timeout) is { } m && m.GetValueOrDefault("READY") == "1";

    public void Dispose()
    {
        _socket.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}
