namespace Isotun.Linux;

/// <summary>SIGHUP for the long-running commands, which reload their config file on it.</summary>
public static class Hangup
{
    private const int Sighup = 1;
    private const nint Default = 0, Ignored = 1;

    /// <summary>
    /// Makes SIGHUP heard: call just before its handler is registered. A process started with SIGHUP ignored (under
    /// <c>nohup</c>, or by a supervisor that ignores it) keeps it ignored across exec, and the runtime never installs a
    /// handler over an ignored signal, so a reload by <c>kill -HUP</c> would silently do nothing. Its disposition is
    /// set back to the default here; a handler already there stays.
    /// </summary>
    public static void Hear()
    {
        nint old = Libc.signal(Sighup, Default);
        if (old != Default && old != Ignored) Libc.signal(Sighup, old); // someone's handler: not ours to drop
    }
}
