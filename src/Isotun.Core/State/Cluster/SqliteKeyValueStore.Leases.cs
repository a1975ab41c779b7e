using Microsoft.Data.Sqlite;

namespace Isotun.State.Cluster;

/// <summary>Leases: granting, renewing, revoking, and ending the expired ones with their keys.</summary>
public sealed partial class SqliteKeyValueStore
{
    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default)
    {
        long ttlMs = KeyValueLimits.TtlSeconds(ttl) * 1000;
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Locked(() =>
        {
            using var tx = _db.BeginTransaction(deferred: false);
            long id = Meta("lease_seq", tx) + 1;
            SetMeta("lease_seq", id, tx);
            using var cmd = Command("INSERT INTO kv_leases (id, ttl_ms, expires_ms) VALUES ($i, $t, $e)", tx);
            cmd.Parameters.AddWithValue("$i", id);
            cmd.Parameters.AddWithValue("$t", ttlMs);
            cmd.Parameters.AddWithValue("$e", Now + ttlMs);
            cmd.ExecuteNonQuery();
            tx.Commit();
            return id;
        }));
    }

    public Task RevokeLeaseAsync(long lease, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lease);
        ct.ThrowIfCancellationRequested();
        Locked(() =>
        {
            using var tx = _db.BeginTransaction(deferred: false);
            bool ended = EndExpiredLeases(tx, Now) | EndLeases(tx, [lease]);
            tx.Commit();
            if (ended) _changes.Pulse();
            return ended;
        });
        return Task.CompletedTask;
    }

    public ILeaseKeepAlive KeepAlive(long lease)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lease);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new LeaseKeeper(lease, _ => Task.FromResult(Renew(lease) / 3), e => e is KeyValueStoreException, _time);
    }

    /// <summary>Pushes the lease's expiry a TTL ahead; its TTL, or null when it has already ended.</summary>
    private TimeSpan? Renew(long lease) => Locked<TimeSpan?>(() =>
    {
        long now = Now;
        using var tx = _db.BeginTransaction(deferred: false);
        using var cmd = Command("UPDATE kv_leases SET expires_ms = $n + ttl_ms WHERE id = $i AND expires_ms > $n RETURNING ttl_ms", tx);
        cmd.Parameters.AddWithValue("$i", lease);
        cmd.Parameters.AddWithValue("$n", now);
        var ttl = cmd.ExecuteScalar() as long?;
        tx.Commit();
        return ttl is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
    });

    private bool LeaseAlive(SqliteTransaction tx, long lease, long now)
    {
        using var cmd = Command("SELECT 1 FROM kv_leases WHERE id = $i AND expires_ms > $n", tx);
        cmd.Parameters.AddWithValue("$i", lease);
        cmd.Parameters.AddWithValue("$n", now);
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>Ends the expired leases, if any, in a write transaction of its own (callers hold the lock).</summary>
    private void SweepIfDue()
    {
        long now = Now;
        using (var check = Command("SELECT 1 FROM kv_leases WHERE expires_ms <= $n LIMIT 1"))
        {
            check.Parameters.AddWithValue("$n", now);
            if (check.ExecuteScalar() is null) return;
        }
        using var tx = _db.BeginTransaction(deferred: false);
        bool ended = EndExpiredLeases(tx, now);
        tx.Commit();
        if (ended) _changes.Pulse();
    }

    private void SweepQuietly()
    {
        if (_disposed) return;
        try
        {
            Locked(() =>
            {
                SweepIfDue();
                return 0;
            });
        }
        catch (Exception e) when (e is KeyValueStoreException or ObjectDisposedException)
        {
            // The next call or sweep tries again; a lease only ends late, never early.
        }
    }

    private bool EndExpiredLeases(SqliteTransaction tx, long now)
    {
        var expired = new List<long>();
        using (var cmd = Command("SELECT id FROM kv_leases WHERE expires_ms <= $n", tx))
        {
            cmd.Parameters.AddWithValue("$n", now);
            using var r = cmd.ExecuteReader();
            while (r.Read()) expired.Add(r.GetInt64(0));
        }
        return expired.Count > 0 && EndLeases(tx, expired);
    }

    /// <summary>Deletes the leases and their keys, the keys' deletes in one new revision; whether any lease existed.</summary>
    private bool EndLeases(SqliteTransaction tx, IReadOnlyList<long> leases)
    {
        bool any = false;
        long rev = Meta("revision", tx) + 1;
        int seq = 0;
        foreach (var lease in leases)
        {
            var keys = new List<byte[]>();
            using (var cmd = Command("SELECT key FROM kv WHERE lease = $l ORDER BY key", tx))
            {
                cmd.Parameters.AddWithValue("$l", lease);
                using var r = cmd.ExecuteReader();
                while (r.Read()) keys.Add(r.GetFieldValue<byte[]>(0));
            }
            foreach (var key in keys) seq += Delete(tx, key, rev, seq);
            using var end = Command("DELETE FROM kv_leases WHERE id = $l", tx);
            end.Parameters.AddWithValue("$l", lease);
            any |= end.ExecuteNonQuery() > 0;
        }
        if (seq > 0) Advance(tx, rev);
        return any;
    }
}
