using Microsoft.Data.Sqlite;

namespace Isotun.State;

/// <summary>What every SQLite file of Isotun's starts with: made only readable by its owner, opened unpooled with a busy timeout.</summary>
internal static class SqliteFile
{
    /// <summary>Makes the directory and an empty file with mode 0600 (an existing file gets that mode too).</summary>
    /// <exception cref="IOException">The path cannot be made or is a directory.</exception>
    /// <exception cref="UnauthorizedAccessException">The path cannot be made or its mode set.</exception>
    public static void Prepare(string path)
    {
        Security.SecretFile.CreateDirectoryFor(path);
        if (Directory.Exists(path)) throw new IOException("is a directory");
        if (!File.Exists(path))
        {
            // 0600 from creation: a file made 0644 and narrowed afterwards could be opened by another user in between,
            // and read for ever after through that handle.
            try
            {
                using var _ = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
            }
            catch (IOException) when (File.Exists(path))
            {
                // made meanwhile by another process: its mode is set below
            }
        }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>
    /// The open connection, waiting inside SQLite up to <paramref name="busyTimeout"/> for another connection's lock
    /// (another store on the same file, a backup) instead of failing at once with "database is locked".
    /// </summary>
    /// <exception cref="SqliteException">The file cannot be opened.</exception>
    public static SqliteConnection Open(string path, TimeSpan busyTimeout)
    {
        var db = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Pooling = false,
            DefaultTimeout = (int)busyTimeout.TotalSeconds,
        }.ToString());
        try
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = $"PRAGMA busy_timeout = {(int)busyTimeout.TotalMilliseconds}";
            cmd.ExecuteNonQuery();
            return db;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }
}
