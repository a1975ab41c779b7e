using System.Net.Sockets;
using System.Text;

namespace Isotun.Linux;

/// <summary>
/// The sd_notify protocol: one datagram of "KEY=VALUE" lines to the unix socket named by <c>$NOTIFY_SOCKET</c>
/// (a path, or an abstract name written with a leading '@'). systemd reads it for <c>Type=notify</c> units, and
/// <c>isotun lab</c> reads the client's READY=1 the same way. Without <c>$NOTIFY_SOCKET</c> it does nothing, and
/// it never throws: telling a supervisor how we are must never be what stops us.
/// </summary>
public static class SystemdNotify
{
    public const string Variable = "NOTIFY_SOCKET";

    /// <summary>Sends <paramref name="state"/> (e.g. "READY=1\nSTATUS=…"); false when there is no socket or it cannot be reached.</summary>
    public static bool Send(string state) => Send(Environment.GetEnvironmentVariable(Variable), state);

    public static bool Send(string? socketName, string state)
    {
        if (string.IsNullOrEmpty(socketName) || socketName.Length > 107) return false;
        if (socketName[0] is not ('/' or '@')) return false;
        try
        {
            // Never blocks: a supervisor that stops reading its socket (a full queue) must not stall the caller, which
            // may be a tunnel's own thread; the message is dropped and false returned instead.
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
            var name = socketName[0] == '@' ? "\0" + socketName[1..] : socketName;
            socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(name));
            return true;
        }
        catch (Exception e) when (e is SocketException or IOException or ArgumentException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>READY=1 with a one-line status.</summary>
    public static bool Ready(string status) => Send($"READY=1\nSTATUS={OneLine(status)}");

    /// <summary>RELOADING=1 with the monotonic time systemd 253+ asks for (older versions ignore the field).</summary>
    public static bool Reloading() => Send($"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds()}");

    public static bool Stopping() => Send("STOPPING=1");

    public static bool Status(string status) => Send($"STATUS={OneLine(status)}");

    private static string OneLine(string text) => text.Replace('\n', ' ').Replace('\r', ' ');

    private static long MonotonicMicroseconds() => Environment.TickCount64 * 1000;
}
