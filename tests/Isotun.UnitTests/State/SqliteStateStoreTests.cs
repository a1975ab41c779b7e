using System.Net;
using Isotun.State;
using Isotun.UnitTests.Security;
using Microsoft.Data.Sqlite;

namespace Isotun.UnitTests.State;

/// <summary>The store contract on the SQLite store, and what only a file gives: data across reopening, locking, modes.</summary>
public sealed class SqliteStateStoreTests : StateStoreContract
{
    private readonly TempDirectory _temp = new();
    private int _files;

    protected override IStateStore Create() => new SqliteStateStore(_temp.File($"state{++_files}.db"), Clock);

    public override void Dispose()
    {
        base.Dispose();
        _temp.Dispose();
    }

    /// <summary>
    /// A revocation the file cannot take (another process holds it locked past the busy timeout) holds all the same,
    /// is reported, and is written with the next revocation once the file can take it.
    /// </summary>
    [Fact]
    public async Task A_revocation_the_file_cannot_take_holds_and_is_written_with_the_next()
    {
        var path = _temp.File("isotun.db");
        var (first, second) = (Guid.NewGuid(), Guid.NewGuid());
        using (var store = new SqliteStateStore(path, Clock))
        {
            using (var other = Connect(path))
            {
                Exec(other, "BEGIN EXCLUSIVE");
                var e = await Task.Run(() => Assert.Throws<StateStoreException>(() => store.Revoke(first, Clock.GetUtcNow().AddHours(1))));
                Assert.Equal(StateStoreError.Locked, e.Error);
                Assert.Contains("holds until this server stops", e.Message);
                Assert.True(store.IsRevoked(first));
                Exec(other, "COMMIT");
            }
            store.Revoke(second, Clock.GetUtcNow().AddHours(1));
        }
        using var reopened = new SqliteStateStore(path, Clock);
        Assert.True(reopened.IsRevoked(first));
        Assert.True(reopened.IsRevoked(second));
    }

    [Fact]
    public void Reopening_the_file_keeps_leases_and_revocations()
    {
        var path = _temp.File("isotun.db");
        var id = Guid.NewGuid();
        using (var store = new SqliteStateStore(path, Clock))
        {
            store.SaveLease("acme", "alice", IPAddress.Parse("10.10.0.7"), IPAddress.Parse("fd00:10::7"));
            store.Revoke(id, Clock.GetUtcNow().AddHours(1));
        }
        using var again = new SqliteStateStore(path, Clock);
        Assert.Equal(new LeaseRecord("alice", IPAddress.Parse("10.10.0.7"), IPAddress.Parse("fd00:10::7"), Clock.GetUtcNow()),
            again.GetLease("acme", "alice"));
        Assert.True(again.IsRevoked(id));
    }

    [Fact]
    public void Reopening_forgets_revocations_of_cookies_that_expired_meanwhile()
    {
        var path = _temp.File("isotun.db");
        var (shortLived, longLived) = (Guid.NewGuid(), Guid.NewGuid());
        using (var store = new SqliteStateStore(path, Clock))
        {
            store.Revoke(shortLived, Clock.GetUtcNow().AddMinutes(1));
            store.Revoke(longLived, Clock.GetUtcNow().AddHours(1));
        }
        Clock.Advance(TimeSpan.FromMinutes(2));
        using var again = new SqliteStateStore(path, Clock);
        Assert.False(again.IsRevoked(shortLived));
        Assert.True(again.IsRevoked(longLived));
    }

    [Fact]
    public void The_file_is_private_in_wal_mode_and_carries_its_schema_version()
    {
        var path = _temp.File("isotun.db");
        using var store = new SqliteStateStore(path, Clock);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var db = Connect(path);
        Assert.Equal("wal", Scalar(db, "PRAGMA journal_mode"));
        Assert.Equal((long)SqliteStateStore.SchemaVersion, Scalar(db, "PRAGMA user_version"));
    }

    [Fact]
    public void A_file_from_before_schema_versions_opens_with_its_data()
    {
        var path = _temp.File("isotun.db");
        using (var db = Connect(path))
        {
            Exec(db, """
                CREATE TABLE revoked (session TEXT PRIMARY KEY, until INTEGER NOT NULL);
                CREATE TABLE leases (tenant TEXT NOT NULL, user TEXT NOT NULL, address TEXT, address6 TEXT,
                                     updated INTEGER NOT NULL, PRIMARY KEY (tenant, user));
                INSERT INTO leases VALUES ('acme', 'alice', '10.10.0.7', NULL, 1700000000);
                """);
        }
        using (var store = new SqliteStateStore(path, Clock))
            Assert.Equal(IPAddress.Parse("10.10.0.7"), store.GetLease("acme", "alice")?.Address);
        using var check = Connect(path);
        Assert.Equal((long)SqliteStateStore.SchemaVersion, Scalar(check, "PRAGMA user_version"));
    }

    [Fact]
    public async Task Two_stores_on_one_file_write_at_once_without_database_is_locked()
    {
        var path = _temp.File("isotun.db");
        using var one = new SqliteStateStore(path, Clock);
        using var two = new SqliteStateStore(path, Clock);
        const int each = 60;
        await Task.WhenAll(new[] { one, two }.Select((store, n) => Task.Run(() =>
        {
            for (int i = 0; i < each; i++)
            {
                store.SaveLease("acme", $"s{n}-{i}", IPAddress.Parse($"10.{n}.0.{i}"), null);
                store.Revoke(Guid.NewGuid(), Clock.GetUtcNow().AddHours(1));
            }
        })));
        Assert.Equal(2 * each, one.Leases("acme").Count);
        Assert.Equal(2 * each, two.Leases("acme").Count);
    }

    [Fact]
    public async Task A_write_waits_for_another_connections_lock_instead_of_failing()
    {
        var path = _temp.File("isotun.db");
        using var store = new SqliteStateStore(path, Clock);
        using var other = Connect(path);
        using (var tx = other.BeginTransaction())
        {
            Exec(other, "INSERT INTO leases VALUES ('acme', 'bob', '10.10.0.2', NULL, 0)", tx);
            var write = Task.Run(() => store.SaveLease("acme", "alice", IPAddress.Parse("10.10.0.1"), null));
            await Task.Delay(300);
            Assert.False(write.IsCompleted, "the write should wait for the other connection's transaction");
            tx.Commit();
            await write.WaitAsync(TimeSpan.FromSeconds(30));
        }
        Assert.Equal(["alice", "bob"], store.Leases("acme").Select(l => l.User).Order());
    }

    internal static SqliteConnection Connect(string path)
    {
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        return db;
    }

    internal static object? Scalar(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    internal static void Exec(SqliteConnection db, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        cmd.ExecuteNonQuery();
    }
}
