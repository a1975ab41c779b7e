namespace Isotun.Security;

/// <summary>
/// What tells that a file changed without reading it: its time of last write, its size, its mode, its inode and the
/// time of its last status change (which a copy that keeps the old time of last write, `cp -p`, still moves). Files the
/// server takes again by themselves when they change (a tenant's password file, the admin token) compare it.
/// </summary>
public readonly record struct FileStamp(DateTime Written, long Length, UnixFileMode Mode, ulong Inode = 0, long Changed = 0)
{
    public static FileStamp Of(FileInfo info) => Linux.Libc.StatusChange(info.FullName) is var (inode, changed)
        ? new(info.LastWriteTimeUtc, info.Length, info.UnixFileMode, inode, changed)
        : new(info.LastWriteTimeUtc, info.Length, info.UnixFileMode);

    /// <summary>The stamp of the file at <paramref name="path"/> now; null when it does not exist or cannot be looked at.</summary>
    public static FileStamp? Of(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists ? Of(info) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
