namespace Isotun.Security;

/// <summary>
/// Writes a whole file through a temporary sibling and a rename, so readers see either the old file or the new one,
/// never half of it. The temporary file has its final mode from the moment it exists.
/// </summary>
internal static class AtomicFile
{
    public const UnixFileMode SecretMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public const UnixFileMode PublicMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false, or the write failed.</exception>
    public static void Write(string path, ReadOnlySpan<byte> bytes, bool overwrite, UnixFileMode mode)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath) ?? throw new IOException($"{path}: no parent directory");
        if (!overwrite && File.Exists(fullPath))
        {
            throw new IOException($"{path}: file exists");
        }

        var tempPath = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = mode;
        }

        try
        {
            using (var stream = new FileStream(tempPath, options))
            {
                if (!OperatingSystem.IsWindows())
                {
                    // The umask may have removed bits we want (0644 under umask 077); it can never add any.
                    File.SetUnixFileMode(stream.SafeFileHandle, mode);
                }

                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            // Without overwrite the rename itself refuses an existing target, which closes the check-then-write race.
            File.Move(tempPath, fullPath, overwrite);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
