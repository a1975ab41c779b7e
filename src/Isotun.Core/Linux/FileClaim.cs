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
}
