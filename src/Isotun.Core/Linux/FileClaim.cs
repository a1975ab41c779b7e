namespace Isotun.Linux;

/// <summary>
/// A claim that one process holds on something of the host for as long as it runs (a server's state file, a tenant's
/// network namespace): the file is held open with an exclusive <c>flock</c>, which the runtime takes for
/// <see cref="FileShare.None"/>. The kernel drops it with the process however it ends, so a leftover from a crash never
/// blocks the next start, and a second process claiming the same file fails at once instead of taking over.
/// </summary>
public static class FileClaim
{
    /// <summary>The claim on <paramref name="path"/> (created when <paramref name="create"/>), or null when another
    /// process holds it.</summary>
    public static FileStream? TryTake(string path, bool create)
    {
        try
        {
            return new FileStream(path, create ? FileMode.OpenOrCreate : FileMode.Open, create ? FileAccess.ReadWrite : FileAccess.Read, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && File.Exists(path))
        {
            return null;
        }
    }

    /// <summary>
    /// Holds the lock file at <paramref name="path"/> (created when missing) for one read-change-write of the file it
    /// guards, waiting while another process (or thread) has its turn: of two such changes at once, the second would
    /// otherwise write the file without the first's.
    /// </summary>
    /// <exception cref="IOException">It was not free within <paramref name="within"/>.</exception>
    public static FileStream WaitForTurn(string path, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            if (TryTake(path, create: true) is { } held) return held;
            if (DateTime.UtcNow > deadline) throw new IOException($"another isotun command held {path} for {within.TotalSeconds:0} s");
            Thread.Sleep(20);
        }
    }
}
