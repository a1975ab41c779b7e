using Microsoft.Data.Sqlite;

namespace Isotun.State.Cluster;

/// <summary>Opening the file: pragmas, the tables, and the schema version.</summary>
public sealed partial class SqliteKeyValueStore
{
    /// <summary>The schema this build writes, kept in <c>kv_meta</c> under <c>schema</c>.</summary>
    internal const long SchemaVersion = 1;

    private static SqliteConnection Open(string path)
    {
        SqliteConnection db;
        try
        {
            SqliteFile.Prepare(path);
            db = SqliteFile.Open(path, BusyTimeout);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SqliteException)
        {
            throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"key-value file {path} cannot be made or opened: {e.Message}", e);
        }
        try
        {
            // WAL: readers never wait for the writer. FULL: a committed block claim or address survives power loss,
            // so no address is handed out twice after a crash.
            Exec(db, "PRAGMA journal_mode = WAL");
            Exec(db, "PRAGMA synchronous = FULL");
            using var tx = db.BeginTransaction(deferred: false);
            Exec(db, """
                CREATE TABLE IF NOT EXISTS kv_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,
                                               mod_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease <> 0;
                CREATE TABLE IF NOT EXISTS kv_leases (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS kv_history (revision INTEGER NOT NULL, seq INTEGER NOT NULL, key BLOB NOT NULL, value BLOB,
                                                       PRIMARY KEY (revision, seq)) WITHOUT ROWID;
                INSERT INTO kv_meta (name, value) VALUES ('schema', 1) ON CONFLICT (name) DO NOTHING;
                """, tx);
            using (var cmd = db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "SELECT value FROM kv_meta WHERE name = 'schema'";
                if ((long)cmd.ExecuteScalar()! is var schema && schema > SchemaVersion)
                    throw new KeyValueStoreException(KeyValueStoreError.Unavailable,
                        $"key-value file {path} has schema version {schema} and this Isotun knows up to {SchemaVersion}: it was written by a newer Isotun");
            }
            tx.Commit();
            return db;
        }
        catch (SqliteException e)
        {
            db.Dispose();
            throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"key-value file {path} cannot be used: {e.Message}", e);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    private static void Exec(SqliteConnection db, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }
}
