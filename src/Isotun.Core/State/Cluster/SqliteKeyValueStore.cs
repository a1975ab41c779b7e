using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace Isotun.State.Cluster;

/// <summary>
/// The one-node <see cref="IKeyValueStore"/>: one SQLite file in WAL mode, one connection per instance guarded by a
/// lock. Writes run in <c>BEGIN IMMEDIATE</c> transactions, so several instances on one file (one per node of a test
/// cluster, or several processes on one host) are serialized by SQLite and share one revision counter.
/// <list type="bullet">
/// <item>Revisions: a counter in <c>kv_meta</c>; every change of a commit gets the commit's revision, as in etcd.</item>
/// <item>Leases: <c>kv_leases</c> holds each lease's TTL and expiry, read against the <see cref="TimeProvider"/>. An
/// expired lease is ended (its keys deleted, one revision) by the first call that finds it, and by a sweep every
/// <see cref="SweepInterval"/>, so watches see the deletes without other traffic.</item>
/// <item>Watches: read <c>kv_history</c>, which keeps the last <c>historyRevisions</c> revisions (older ones are
/// compacted). A watch wakes at once when a store of this process writes to the same file, and polls every
/// <see cref="PollInterval"/> for writes by other processes.</item>
/// </list>
/// Limits: every call blocks a thread while SQLite works (control plane only); calls wait up to
/// <see cref="BusyTimeout"/> for another connection's lock; leases end only while some instance on the file runs.
/// </summary>
public sealed partial class SqliteKeyValueStore : IKeyValueStore
{
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan BusyTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How many revisions of history a watch can go back by default.</summary>
    public const long DefaultHistoryRevisions = 10_000;

    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ChangeSignal _changes;
    private readonly long _historyRevisions;
    private readonly CancellationTokenSource _closing = new();
    private readonly ITimer _sweeper;
    private readonly string _path;
    private bool _disposed;

    /// <summary>Opens (or makes) the file.</summary>
    /// <exception cref="KeyValueStoreException">The file cannot be used (<see cref="KeyValueStoreError.Unavailable"/>); the message says why.</exception>
    public SqliteKeyValueStore(string path, TimeProvider? time = null, long historyRevisions = DefaultHistoryRevisions)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(historyRevisions);
        _path = path;
        _time = time ?? TimeProvider.System;
        _historyRevisions = historyRevisions;
        _db = Open(path);
        _changes = ChangeSignal.For(path);
        _sweeper = _time.CreateTimer(_ => SweepQuietly(), null, SweepInterval, SweepInterval);
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        var k = KeyValueLimits.KeyBytes(key);
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Locked(() =>
        {
            SweepIfDue();
            using var cmd = Command("SELECT key, value, create_revision, mod_revision, version, lease FROM kv WHERE key = $k");
            cmd.Parameters.AddWithValue("$k", k);
            using var r = cmd.ExecuteReader();
            return r.Read() ? Entry(r) : null;
        }));
    }

    public Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default)
    {
        var start = KeyValueLimits.KeyBytes(prefix, "prefix");
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Locked(() =>
        {
            SweepIfDue();
            using var tx = _db.BeginTransaction(deferred: true); // one snapshot for the keys and the revision
            using var cmd = Command("SELECT key, value, create_revision, mod_revision, version, lease FROM kv WHERE key >= $s AND key < $e ORDER BY key", tx);
            cmd.Parameters.AddWithValue("$s", start);
            cmd.Parameters.AddWithValue("$e", KeyValueLimits.PrefixEnd(start));
            var list = new List<KeyValueEntry>();
            using (var r = cmd.ExecuteReader())
                while (r.Read()) list.Add(Entry(r));
            return new RangeResult(list, Meta("revision", tx));
        }));
    }

    public Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default)
    {
        KeyValueLimits.CheckCommit(conditions, writes);
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Locked(() =>
        {
            long now = Now;
            using var tx = _db.BeginTransaction(deferred: false);
            bool swept = EndExpiredLeases(tx, now);
            long current = Meta("revision", tx);
            foreach (var c in conditions)
            {
                if (ModRevision(tx, KeyValueLimits.KeyBytes(c.Key)) == c.ModRevision) continue;
                tx.Commit();
                if (swept) _changes.Pulse();
                return new CommitResult(false, current);
            }
            foreach (var w in writes)
            {
                if (w.IsDelete || w.Lease == 0 || LeaseAlive(tx, w.Lease, now)) continue;
                tx.Commit();
                if (swept) _changes.Pulse();
                throw new KeyValueStoreException(KeyValueStoreError.LeaseNotFound, $"put of {w.Key}: lease {w.Lease} does not exist (it expired, was revoked or was never granted)");
            }
            long rev = current + 1;
            int seq = 0;
            foreach (var w in writes)
                seq += w.IsDelete ? Delete(tx, KeyValueLimits.KeyBytes(w.Key), rev, seq) : Put(tx, w, rev, seq);
            if (seq > 0) Advance(tx, rev);
            tx.Commit();
            if (seq > 0 || swept) _changes.Pulse();
            return new CommitResult(true, seq > 0 ? rev : current);
        }));
    }

    private int Put(SqliteTransaction tx, KeyWrite w, long rev, int seq)
    {
        var key = KeyValueLimits.KeyBytes(w.Key);
        var value = w.Value.ToArray();
        using var cmd = Command("""
            INSERT INTO kv (key, value, create_revision, mod_revision, version, lease) VALUES ($k, $v, $r, $r, 1, $l)
            ON CONFLICT (key) DO UPDATE SET value = $v, mod_revision = $r, version = version + 1, lease = $l
            """, tx);
        cmd.Parameters.AddWithValue("$k", key);
        cmd.Parameters.AddWithValue("$v", value);
        cmd.Parameters.AddWithValue("$r", rev);
        cmd.Parameters.AddWithValue("$l", w.Lease);
        cmd.ExecuteNonQuery();
        History(tx, rev, seq, key, value);
        return 1;
    }

    /// <summary>Deletes the key if present, with its event; returns how many events it made (0 or 1).</summary>
    private int Delete(SqliteTransaction tx, byte[] key, long rev, int seq)
    {
        using var cmd = Command("DELETE FROM kv WHERE key = $k", tx);
        cmd.Parameters.AddWithValue("$k", key);
        if (cmd.ExecuteNonQuery() == 0) return 0;
        History(tx, rev, seq, key, null);
        return 1;
    }

    private void History(SqliteTransaction tx, long rev, int seq, byte[] key, byte[]? value)
    {
        using var cmd = Command("INSERT INTO kv_history (revision, seq, key, value) VALUES ($r, $s, $k, $v)", tx);
        cmd.Parameters.AddWithValue("$r", rev);
        cmd.Parameters.AddWithValue("$s", seq);
        cmd.Parameters.AddWithValue("$k", key);
        cmd.Parameters.AddWithValue("$v", (object?)value ?? DBNull.Value);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Sets the store's revision, and now and then drops the history older than the kept window.</summary>
    private void Advance(SqliteTransaction tx, long rev)
    {
        SetMeta("revision", rev, tx);
        if (rev % 64 != 0 || rev <= _historyRevisions) return;
        long compacted = rev - _historyRevisions;
        using var cmd = Command("DELETE FROM kv_history WHERE revision <= $c", tx);
        cmd.Parameters.AddWithValue("$c", compacted);
        cmd.ExecuteNonQuery();
        if (compacted > Meta("compacted", tx)) SetMeta("compacted", compacted, tx);
    }

    private long ModRevision(SqliteTransaction tx, byte[] key)
    {
        using var cmd = Command("SELECT mod_revision FROM kv WHERE key = $k", tx);
        cmd.Parameters.AddWithValue("$k", key);
        return cmd.ExecuteScalar() is long rev ? rev : 0;
    }

    private static KeyValueEntry Entry(SqliteDataReader r) => new(
        KeyValueLimits.KeyText(r.GetFieldValue<byte[]>(0)), r.GetFieldValue<byte[]>(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5));

    public async IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, [EnumeratorCancellation] CancellationToken ct = default,
        bool progress = false)
    {
        var start = KeyValueLimits.KeyBytes(prefix, "prefix");
        var end = KeyValueLimits.PrefixEnd(start);
        ArgumentOutOfRangeException.ThrowIfNegative(fromRevision);
        long next = fromRevision > 0 ? fromRevision : Locked(() => Meta("revision")) + 1;
        long told = next - 1; // the revision up to which progress was last told
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct, _closing.Token);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (_closing.IsCancellationRequested) yield break;
            var wake = _changes.Next;
            var (events, through) = Locked(() => ReadHistory(start, end, next));
            foreach (var e in events) yield return e;
            next = Math.Max(next, through + 1);
            if (events.Count > 0) continue;
            // Nothing under the prefix up to the store's revision: said when the revision moved (writes elsewhere).
            if (progress && through > told)
            {
                told = through;
                yield return new KeyValueEvent(KeyValueEventKind.Progress, "", ReadOnlyMemory<byte>.Empty, through);
            }
            try
            {
                await Task.WhenAny(wake, Task.Delay(PollInterval, _time, wait.Token)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>The events under the prefix from revision <paramref name="next"/> up to the current one, and that revision.</summary>
    private (List<KeyValueEvent> Events, long Through) ReadHistory(byte[] start, byte[] end, long next)
    {
        SweepIfDue();
        using var tx = _db.BeginTransaction(deferred: true);
        long compacted = Meta("compacted", tx);
        if (next <= compacted)
            throw new KeyValueStoreException(KeyValueStoreError.Compacted,
                $"watch from revision {next}: the history up to revision {compacted} was compacted (the store keeps {_historyRevisions} revisions)");
        long current = Meta("revision", tx);
        using var cmd = Command("""
            SELECT key, value, revision FROM kv_history
            WHERE revision >= $n AND revision <= $c AND key >= $s AND key < $e ORDER BY revision, seq
            """, tx);
        cmd.Parameters.AddWithValue("$n", next);
        cmd.Parameters.AddWithValue("$c", current);
        cmd.Parameters.AddWithValue("$s", start);
        cmd.Parameters.AddWithValue("$e", end);
        var list = new List<KeyValueEvent>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var key = KeyValueLimits.KeyText(r.GetFieldValue<byte[]>(0));
            list.Add(r.IsDBNull(1)
                ? new KeyValueEvent(KeyValueEventKind.Delete, key, ReadOnlyMemory<byte>.Empty, r.GetInt64(2))
                : new KeyValueEvent(KeyValueEventKind.Put, key, r.GetFieldValue<byte[]>(1), r.GetInt64(2)));
        }
        return (list, current);
    }

    /// <summary>Runs <paramref name="work"/> under the lock, with SQLite's failures as <see cref="KeyValueStoreException"/>s.</summary>
    private T Locked<T>(Func<T> work)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                return work();
            }
            catch (SqliteException e)
            {
                throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"key-value file {_path}: {e.Message}", e);
            }
        }
    }

    private SqliteCommand Command(string sql, SqliteTransaction? tx = null)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    private long Meta(string name, SqliteTransaction? tx = null)
    {
        using var cmd = Command("SELECT value FROM kv_meta WHERE name = $n", tx);
        cmd.Parameters.AddWithValue("$n", name);
        return cmd.ExecuteScalar() is long v ? v : 0;
    }

    private void SetMeta(string name, long value, SqliteTransaction tx)
    {
        using var cmd = Command("INSERT INTO kv_meta (name, value) VALUES ($n, $v) ON CONFLICT (name) DO UPDATE SET value = $v", tx);
        cmd.Parameters.AddWithValue("$n", name);
        cmd.Parameters.AddWithValue("$v", value);
        cmd.ExecuteNonQuery();
    }

    public async ValueTask DisposeAsync()
    {
        await _sweeper.DisposeAsync().ConfigureAwait(false);
        _closing.Cancel();
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _db.Dispose();
        }
    }
}
