using Microsoft.Data.Sqlite;

namespace Isotun.State;

/// <summary>Opening the state file: pragmas, the integrity check, the schema version, and a clear error when it fails.</summary>
public sealed partial class SqliteStateStore
{
    /// <summary>The schema this build writes, kept in <c>PRAGMA user_version</c> (0: a file from before versioning, same tables).</summary>
    internal const int SchemaVersion = 1;

    /// <summary>How long a statement waits for another connection's lock before it fails with "database is locked".</summary>
    internal static readonly TimeSpan BusyTimeout = TimeSpan.FromSeconds(5);

    private const string MoveAside =
        "To start afresh, stop the server and move the file aside together with its -wal and -shm files; the next start " +
        "makes an empty one. Sticky leases and cookie revocations are lost with it: a session logged out before stays " +
        "resumable with its cookie until the cookie expires, so also move the cookie key file (cookie.key-file) aside " +
        "to invalidate every cookie issued before (every user logs in again).";

    private const string FixAccess =
        "Check that the server's user can read and write the file and its directory (SQLite writes -wal and -shm files " +
        "beside it) and that the disk has room, or point `state` in the config to another path.";

    private static SqliteConnection Open(string path, long now)
    {
        PrepareFile(path);
        SqliteConnection db;
        try
        {
            db = SqliteFile.Open(path, BusyTimeout);
        }
        catch (SqliteException e)
        {
            throw Failure(path, e);
        }
        try
        {
            CheckIntegrity(db, path);
            // WAL: readers never wait for the writer. synchronous=FULL syncs the WAL at every commit, so a committed
            // lease or revocation survives power loss too (NORMAL survives a killed process but may lose the last
            // commits on power loss, and a lost revocation makes a logged-out cookie good again). Writes come at login
            // and session-end rate, not per packet, so one fsync each is cheap.
            Exec(db, "PRAGMA journal_mode = WAL");
            Exec(db, "PRAGMA synchronous = FULL");
            Migrate(db, path);
            // A write at start, so a file that cannot be written is found now and not at the first login.
            Exec(db, $"DELETE FROM revoked WHERE until < {now}");
            return db;
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw Failure(path, e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    private static void PrepareFile(string path)
    {
        try
        {
            SqliteFile.Prepare(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var problem = Directory.Exists(path) ? "is a directory" : $"cannot be made or opened ({e.Message.TrimEnd('.')})";
            throw new StateStoreException(StateStoreError.Inaccessible, path, Message(path, problem, FixAccess), e);
        }
    }

    /// <summary><c>PRAGMA quick_check</c>: the b-trees and records are well formed (it skips only the index-to-table match).</summary>
    private static void CheckIntegrity(SqliteConnection db, string path)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA quick_check(3)";
        using var r = cmd.ExecuteReader();
        var problems = new List<string>();
        while (r.Read()) problems.Add(r.GetString(0));
        if (problems is ["ok"]) return;
        throw new StateStoreException(StateStoreError.Corrupt, path,
            Message(path, $"is damaged (integrity check: {string.Join("; ", problems)})", MoveAside));
    }

    private static void Migrate(SqliteConnection db, string path)
    {
        long version;
        using (var cmd = db.CreateCommand())
        {
            cmd.CommandText = "PRAGMA user_version";
            version = (long)cmd.ExecuteScalar()!;
        }
        if (version > SchemaVersion)
            throw new StateStoreException(StateStoreError.NewerSchema, path, Message(path,
                $"has schema version {version} and this Isotun knows up to {SchemaVersion}: it was written by a newer Isotun",
                "Run that newer Isotun again. " + MoveAside));
        if (version < SchemaVersion)
        {
            using var tx = db.BeginTransaction(); // BEGIN IMMEDIATE: a second store opening the file at once waits here
            Exec(db, """
                CREATE TABLE IF NOT EXISTS revoked (session TEXT PRIMARY KEY, until INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS leases (tenant TEXT NOT NULL, user TEXT NOT NULL, address TEXT, address6 TEXT,
                                                   updated INTEGER NOT NULL, PRIMARY KEY (tenant, user));
                """, tx);
            Exec(db, $"PRAGMA user_version = {SchemaVersion}", tx);
            tx.Commit();
        }
        // Another program's database may have tables by these names with other columns.
        try
        {
            // One statement per command: a reader left on a first SELECT never prepares the second.
            Exec(db, "SELECT session, until FROM revoked LIMIT 0");
            Exec(db, "SELECT tenant, user, address, address6, updated FROM leases LIMIT 0");
            // Added within version 1 (made here once the file is known to be Isotun's), so that an Isotun from before
            // it still opens the file, and leaves the table alone.
            Exec(db, "CREATE TABLE IF NOT EXISTS trust (tenant TEXT PRIMARY KEY, cas TEXT NOT NULL, ous TEXT NOT NULL, since INTEGER NOT NULL)");
            Exec(db, "SELECT tenant, cas, ous, since FROM trust LIMIT 0");
        }
        catch (SqliteException e) when (e.SqliteErrorCode == SQLitePCL.raw.SQLITE_ERROR)
        {
            throw new StateStoreException(StateStoreError.ForeignSchema, path,
                Message(path, $"is an SQLite database without Isotun's tables ({SqliteReason(e)})", MoveAside), e);
        }
    }

    private static StateStoreException Failure(string path, SqliteException e)
    {
        var (error, problem, fix) = (e.SqliteErrorCode & 0xff) switch
        {
            SQLitePCL.raw.SQLITE_NOTADB => (StateStoreError.NotADatabase, "is not an SQLite database", MoveAside),
            SQLitePCL.raw.SQLITE_CORRUPT => (StateStoreError.Corrupt, "is damaged (the database disk image is malformed)", MoveAside),
            SQLitePCL.raw.SQLITE_BUSY or SQLitePCL.raw.SQLITE_LOCKED => (StateStoreError.Locked,
                $"stayed locked by another process for {BusyTimeout.TotalSeconds:0} s",
                "Stop the other isotun server using this file, or give each server its own `state` file."),
            SQLitePCL.raw.SQLITE_READONLY => (StateStoreError.Inaccessible, "cannot be written (the file or its directory is read-only)", FixAccess),
            _ => (StateStoreError.Inaccessible, $"cannot be used ({SqliteReason(e)})", FixAccess),
        };
        return new StateStoreException(error, path, Message(path, problem, fix), e);
    }

    /// <summary>SQLite's own words, without the frame of "SQLite Error 14: 'unable to open database file'."</summary>
    private static string SqliteReason(SqliteException e) =>
        e.Message.StartsWith("SQLite Error", StringComparison.Ordinal) && e.Message.IndexOf(": ", StringComparison.Ordinal) is var i and >= 0
            ? e.Message[(i + 2)..].TrimEnd('.').Trim('\'')
            : e.Message;

    private static string Message(string path, string problem, string fix) => $"state file {path}: {problem}. {fix}";

    private static void Exec(SqliteConnection db, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }
}
