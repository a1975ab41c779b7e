using System.Runtime.CompilerServices;

namespace Isotun.Transport;

/// <summary>
/// Where the code after an awaited socket operation runs. By default .NET hands every socket completion from its
/// epoll thread to a thread-pool thread: one more thread woken per packet, which is most of an idle tunnel's latency
/// on a small VM. With inline completions the epoll thread itself runs the continuation, so a TLS record is read,
/// decrypted and written to the TUN by the thread the kernel woke, as ocserv's worker does.
/// The price: nothing that runs there may block, or every socket on that epoll thread waits (and a wait for another
/// socket operation there never ends). So control-plane work that may block (the state file and its fsync, password
/// hashing, files, child processes) first leaves the epoll thread with <see cref="LeaveAsync"/>.
/// </summary>
public static class IoThreads
{
    /// <summary>The runtime's switch; read once, when the first socket is made.</summary>
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Turns inline completions on for this process unless the environment already says (an operator's
    /// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0</c> keeps them off). Call before the first socket is made.
    /// </summary>
    public static void PreferInlineCompletions()
    {
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
    }

    /// <summary>
    /// Continues on a thread-pool thread: await it before work that may block, wherever the code before it may have
    /// run on an epoll thread.
    /// </summary>
    public static YieldAwaitable LeaveAsync() => Task.Yield();
}
