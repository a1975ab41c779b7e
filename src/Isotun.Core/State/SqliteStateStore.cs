using System.Net;
using Microsoft.Data.Sqlite;

namespace Isotun.State;

/// <summary>The embedded default store: one SQLite file, WAL mode, one connection guarded by a lock (control plane only).</summary>
public sealed class SqliteStateStore : IStateStore
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;

    public SqliteStateStore(string path, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        if (!File.Exists(path))
            using (File.Create(path, 0, FileOptions.None)) { }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _db.Open();
        Exec("PRAGMA journal_mode=WAL;");
        Exec("""
            CREATE TABLE IF NOT EXISTS revoked (session TEXT PRIMARY KEY, until INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS leases (tenant TEXT NOT NULL, user TEXT NOT NULL, address TEXT, address6 TEXT,
                                               updated INTEGER NOT NULL, PRIMARY KEY (tenant, user));
            """);
        Exec($"DELETE FROM revoked WHERE until < {_time.GetUtcNow().ToUnixTimeSeconds()};");
    }

    public bool IsRevoked(Guid sessionId)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT 1 FROM revoked WHERE session = $s";
            cmd.Parameters.AddWithValue("$s", sessionId.ToString("N"));
            return cmd.ExecuteScalar() is not null;
        }
    }

    public void Revoke(Guid sessionId, DateTimeOffset until)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "INSERT OR REPLACE INTO revoked (session, until) VALUES ($s, $u)";
            cmd.Parameters.AddWithValue("$s", sessionId.ToString("N"));
            cmd.Parameters.AddWithValue("$u", until.ToUnixTimeSeconds());
            cmd.ExecuteNonQuery();
        }
    }

    public LeaseRecord? GetLease(string tenant, string user)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT user, address, address6, updated FROM leases WHERE tenant = $t AND user = $u";
            cmd.Parameters.AddWithValue("$t", tenant);
            cmd.Parameters.AddWithValue("$u", user);
            using var r = cmd.ExecuteReader();
            return r.Read() ? Record(r) : null;
        }
    }

    public IReadOnlyList<LeaseRecord> Leases(string tenant)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT user, address, address6, updated FROM leases WHERE tenant = $t ORDER BY updated";
            cmd.Parameters.AddWithValue("$t", tenant);
            using var r = cmd.ExecuteReader();
            var list = new List<LeaseRecord>();
            while (r.Read()) list.Add(Record(r));
            return list;
        }
    }

    private static LeaseRecord Record(SqliteDataReader r) => new(
        r.GetString(0),
        r.IsDBNull(1) ? null : IPAddress.TryParse(r.GetString(1), out var a) ? a : null,
        r.IsDBNull(2) ? null : IPAddress.TryParse(r.GetString(2), out var b) ? b : null,
        DateTimeOffset.FromUnixTimeSeconds(r.GetInt64(3)));

    public void SaveLease(string tenant, string user, IPAddress? address, IPAddress? address6)
    {
        lock (_lock)
        {
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "INSERT OR REPLACE INTO leases (tenant, user, address, address6, updated) VALUES ($t, $u, $a, $b, $n)";
            cmd.Parameters.AddWithValue("$t", tenant);
            cmd.Parameters.AddWithValue("$u", user);
            cmd.Parameters.AddWithValue("$a", (object?)address?.ToString() ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$b", (object?)address6?.ToString() ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$n", _time.GetUtcNow().ToUnixTimeSeconds());
            cmd.ExecuteNonQuery();
        }
    }

    private void Exec(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => _db.Dispose();
}
