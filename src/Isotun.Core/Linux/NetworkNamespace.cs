using System.Runtime.InteropServices;

namespace Isotun.Linux;

/// <summary>
/// Runs a piece of work on a thread that has entered a named network namespace (/var/run/netns/NAME).
/// Sockets and TUN devices belong to the namespace they were created in, so work done here stays there
/// even after the thread returns.
/// </summary>
public static class NetworkNamespace
{
    public static string PathOf(string name) => $"/var/run/netns/{name}";

    public static bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>
    /// True when a namespace is mounted at the name in this process's mount namespace. A bare file of that name is
    /// what a crashed run leaves when it ran in a private mount namespace (a systemd service with ProtectSystem):
    /// the bind mount went with it, the file stayed, and <c>ip netns add</c> refuses the name.
    /// </summary>
    public static bool IsMounted(string name) => IsMounted(name, File.ReadLines("/proc/self/mountinfo"));

    internal static bool IsMounted(string name, IEnumerable<string> mountinfo)
    {
        string run = $"/run/netns/{name}", varRun = PathOf(name);
        foreach (var line in mountinfo)
        {
            // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the fifth field is the mount point.
            var fields = line.Split(' ', 6);
            if (fields.Length > 4 && (fields[4] == run || fields[4] == varRun)) return true;
        }
        return false;
    }

    /// <summary>
    /// Runs <paramref name="work"/> in network namespace <paramref name="name"/>, on a thread of its own that enters it
    /// and ends after; null runs it here, in this thread's namespace.
    /// </summary>
    public static T Run<T>(string? name, Func<T> work)
    {
        if (name is null) return work();
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            int target = Libc.open(PathOf(name), Libc.O_RDONLY | Libc.O_CLOEXEC);
            if (target < 0)
            {
                error = new InvalidOperationException($"network namespace '{name}': {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
                return;
            }
            try
            {
                if (Libc.setns(target, Libc.CLONE_NEWNET) < 0)
                {
                    error = new InvalidOperationException($"setns '{name}': {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
                    return;
                }
                // The thread ends after this, so it never has to switch back to the original namespace.
                result = work();
            }
            catch (Exception e)
            {
                error = e;
            }
            finally
            {
                Libc.close(target);
            }
        }) { IsBackground = true, Name = $"netns-{name}" };
        thread.Start();
        thread.Join();
        if (error is not null) throw error;
        return result;
    }

    /// <inheritdoc cref="Run{T}(string?, Func{T})"/>
    public static void Run(string? name, Action work) => Run(name, () =>
    {
        work();
        return 0;
    });
}
