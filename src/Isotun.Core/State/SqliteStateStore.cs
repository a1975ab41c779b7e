using System.Net;
using Microsoft.Data.Sqlite;

namespace Isotun.State;

/// <summary>
/// The embedded default store: one SQLite file in WAL mode, one connection guarded by a lock. Control plane only:
/// every call may wait on the disk (an fsync per write, up to the busy timeout for a lock).
/// </summary>
public sealed partial class SqliteStateStore : IStateStore
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;

    /// <summary>Opens (or makes) the state file and checks it.</summary>
    /// <exception cref="StateStoreException">The file cannot be used; the message says why and how to recover.</exception>
    public SqliteStateStore(string path, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _db = Open(path, _time.GetUtcNow().ToUnixTimeSeconds());
    }

    public bool IsRevoked(Guid sessionId)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT 1 FROM revoked WHERE session = $s");
            cmd.Parameters.AddWithValue("$s", sessionId.ToString("N"));
            return cmd.ExecuteScalar() is not null;
        }
    }

    public void Revoke(Guid sessionId, DateTimeOffset until)
    {
        lock (_lock)
        {
            using var cmd = Command("INSERT OR REPLACE INTO revoked (session, until) VALUES ($s, $u)");
            cmd.Parameters.AddWithValue("$s", sessionId.ToString("N"));
            cmd.Parameters.AddWithValue("$u", until.ToUnixTimeSeconds());
            cmd.ExecuteNonQuery();
        }
    }

    public LeaseRecord? GetLease(string tenant, string user)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT user, address, address6, updated FROM leases WHERE tenant = $t AND user = $u");
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
            using var cmd = Command("SELECT user, address, address6, updated FROM leases WHERE tenant = $t ORDER BY updated, user");
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
            using var cmd = Command("INSERT OR REPLACE INTO leases (tenant, user, address, address6, updated) VALUES ($t, $u, $a, $b, $n)");
            cmd.Parameters.AddWithValue("$t", tenant);
            cmd.Parameters.AddWithValue("$u", user);
            cmd.Parameters.AddWithValue("$a", (object?)address?.ToString() ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$b", (object?)address6?.ToString() ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$n", _time.GetUtcNow().ToUnixTimeSeconds());
            cmd.ExecuteNonQuery();
        }
    }

    private SqliteCommand Command(string sql)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    public void Dispose()
    {
        lock (_lock) _db.Dispose();
    }
}
