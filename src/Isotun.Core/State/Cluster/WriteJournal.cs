using Microsoft.Data.Sqlite;

namespace Isotun.State.Cluster;

/// <summary>
/// The changes a cluster node made that the store (etcd) has not taken yet, kept on the node's disk until it has:
/// a revocation made while etcd is away outlives a restart of the node, which writes it when it joins again.
/// One SQLite file (mode 0600) beside the node's state file, in WAL mode with synchronous=NORMAL: a write survives the
/// process being killed, and costs no disk flush (a kick or logout writes here on the login path); a power cut may lose
/// the last ones, as it may lose them from etcd's own queue. Only the operator's and the
/// login throttle's lasting changes go in (revoked users and cookies, login bans and their lifting): what hangs on the
/// node's lease dies with the node anyway.
/// </summary>
public sealed class WriteJournal : IDisposable
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();

    private WriteJournal(SqliteConnection db, string path)
    {
        _db = db;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Where a node keeps its journal: beside its state file, named after it.</summary>
    public static string PathFor(string statePath) => System.IO.Path.GetFullPath(statePath) + ".cluster-pending";

    /// <summary>Opens (or makes) the journal at <paramref name="path"/>.</summary>
    /// <exception cref="IOException">The file cannot be made, opened or used; the message names it and says what to do.</exception>
    public static WriteJournal Open(string path)
    {
        SqliteConnection? db = null;
        try
        {
            SqliteFile.Prepare(path);
            db = SqliteFile.Open(path, TimeSpan.FromSeconds(5));
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = NORMAL;
                CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, value BLOB, made INTEGER, seen INTEGER);
                """;
            cmd.ExecuteNonQuery();
            // A journal from before writes carried when they were made and what the node had seen then: its rows read
            // as made at an unknown time, knowing nothing.
            foreach (var column in new[] { "made", "seen" })
            {
                cmd.CommandText = $"SELECT COUNT(*) FROM pragma_table_info('pending') WHERE name = '{column}'";
                if ((long)cmd.ExecuteScalar()! > 0) continue;
                cmd.CommandText = $"ALTER TABLE pending ADD COLUMN {column} INTEGER";
                cmd.ExecuteNonQuery();
            }
            return new WriteJournal(db, path);
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            db?.Dispose();
            throw new IOException($"{path} (the cluster changes waiting for etcd) cannot be used: {e.Message.TrimEnd('.')}. " +
                "Let the server's user read and write it and its directory; if it is damaged, move it aside (the changes it " +
                "held are lost: make them again once the node is up).", e);
        }
    }

    /// <summary>
    /// Keeps a write, made at <paramref name="made"/> by a node whose state reflected the store at revision
    /// <paramref name="seen"/>, until <see cref="Remove"/>; returns its number, which orders it among the others.
    /// </summary>
    /// <exception cref="SqliteException">The disk refused it.</exception>
    public long Append(KeyWrite write, DateTimeOffset made, long seen)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "INSERT INTO pending (key, value, made, seen) VALUES ($k, $v, $m, $s); SELECT last_insert_rowid()";
            cmd.Parameters.AddWithValue("$m", made.ToUnixTimeSeconds());
            cmd.Parameters.AddWithValue("$s", seen);
            cmd.Parameters.AddWithValue("$k", write.Key);
            cmd.Parameters.AddWithValue("$v", write.IsDelete ? DBNull.Value : write.Value.ToArray());
            return (long)cmd.ExecuteScalar()!;
        }
    }

    /// <summary>Forgets a write the store took (or can never take).</summary>
    /// <exception cref="SqliteException">The disk refused it.</exception>
    public void Remove(long seq)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "DELETE FROM pending WHERE seq = $s";
            cmd.Parameters.AddWithValue("$s", seq);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>The writes kept, oldest first, with when each was made and the revision seen then (null in a journal from before they were kept).</summary>
    public IReadOnlyList<(long Seq, KeyWrite Write, DateTimeOffset? Made, long? Seen)> Entries()
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT seq, key, value, made, seen FROM pending ORDER BY seq";
            using var r = cmd.ExecuteReader();
            var list = new List<(long, KeyWrite, DateTimeOffset?, long?)>();
            while (r.Read())
                list.Add((r.GetInt64(0), r.IsDBNull(2) ? KeyWrite.Delete(r.GetString(1)) : KeyWrite.Put(r.GetString(1), (byte[])r.GetValue(2)),
                    r.IsDBNull(3) ? null : DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(3)), r.IsDBNull(4) ? null : r.GetInt64(4)));
            return list;
        }
    }

    public void Dispose()
    {
        lock (_lock) _db.Dispose();
    }
}
