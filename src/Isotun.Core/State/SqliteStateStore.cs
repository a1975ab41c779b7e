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
    private readonly string _path;

    // Revocations a write could not save (the file locked past the busy timeout, a read-only file system): they hold
    // here, and are written with the next revocation that can be.
    private readonly Dictionary<Guid, DateTimeOffset> _unsaved = [];

    /// <summary>Opens (or makes) the state file and checks it.</summary>
    /// <exception cref="StateStoreException">The file cannot be used; the message says why and how to recover.</exception>
    public SqliteStateStore(string path, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _path = path;
        _db = Open(path, _time.GetUtcNow().ToUnixTimeSeconds());
    }

    public bool IsRevoked(Guid sessionId)
    {
        lock (_lock)
        {
            if (_unsaved.ContainsKey(sessionId)) return true;
            using var cmd = Command("SELECT 1 FROM revoked WHERE session = $s");
            cmd.Parameters.AddWithValue("$s", sessionId.ToString("N"));
            return cmd.ExecuteScalar() is not null;
        }
    }

    /// <summary>
    /// Revokes a session's cookie. When the file cannot take it, the revocation still holds in this process (and is
    /// written with a later one), and <see cref="StateStoreException"/> says it was not saved.
    /// </summary>
    public void Revoke(Guid sessionId, DateTimeOffset until)
    {
        lock (_lock)
        {
            _unsaved[sessionId] = until;
            try
            {
                using var transaction = _db.BeginTransaction();
                foreach (var (session, end) in _unsaved)
                {
                    using var cmd = Command("INSERT OR REPLACE INTO revoked (session, until) VALUES ($s, $u)");
                    cmd.Transaction = transaction;
                    cmd.Parameters.AddWithValue("$s", session.ToString("N"));
                    cmd.Parameters.AddWithValue("$u", end.ToUnixTimeSeconds());
                    cmd.ExecuteNonQuery();
                }
                transaction.Commit();
                _unsaved.Clear();
            }
            catch (SqliteException e)
            {
                var error = e.SqliteErrorCode is 5 or 6 ? StateStoreError.Locked : StateStoreError.Inaccessible; // SQLITE_BUSY, SQLITE_LOCKED
                throw new StateStoreException(error, _path,
                    $"a cookie's revocation could not be written to the state file {_path} ({e.Message}); it holds until this server stops, and is written with the next revocation that can be", e);
            }
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

    public TrustRecord? GetTrust(string tenant)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT cas, ous, since FROM trust WHERE tenant = $t");
            cmd.Parameters.AddWithValue("$t", tenant);
            using var r = cmd.ExecuteReader();
            if (!r.Read()) return null;
            // What cannot be read back is no record: the next start or reload writes a good one.
            try
            {
                return new TrustRecord(
                    System.Text.Json.JsonSerializer.Deserialize(r.GetString(0), StateJson.Default.StringArray) ?? [],
                    System.Text.Json.JsonSerializer.Deserialize(r.GetString(1), StateJson.Default.StringArray) ?? [],
                    DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(r.GetInt64(2), 0, DateTimeOffset.MaxValue.ToUnixTimeSeconds())));
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }
    }

    public void SaveTrust(string tenant, TrustRecord trust)
    {
        lock (_lock)
        {
            using var cmd = Command("INSERT OR REPLACE INTO trust (tenant, cas, ous, since) VALUES ($t, $c, $o, $s)");
            cmd.Parameters.AddWithValue("$t", tenant);
            cmd.Parameters.AddWithValue("$c", System.Text.Json.JsonSerializer.Serialize([.. trust.Cas], StateJson.Default.StringArray));
            cmd.Parameters.AddWithValue("$o", System.Text.Json.JsonSerializer.Serialize([.. trust.Ous], StateJson.Default.StringArray));
            cmd.Parameters.AddWithValue("$s", trust.SinceSeconds);
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

/// <summary>Source-generated JSON for the state file's lists (trimmed builds have no reflection-based serializer).</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string[]))]
internal sealed partial class StateJson : System.Text.Json.Serialization.JsonSerializerContext;
