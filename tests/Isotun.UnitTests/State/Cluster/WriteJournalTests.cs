using Isotun.State.Cluster;
using Microsoft.Data.Sqlite;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The node's journal of changes waiting for etcd: each is kept with when it was made and the store revision the node had seen then.</summary>
public sealed class WriteJournalTests : IDisposable
{
    private readonly Security.TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Writes_come_back_in_their_order_with_the_time_they_were_made()
    {
        string path = _temp.File("isotun.db.cluster-pending");
        var made = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        using (var journal = WriteJournal.Open(path))
        {
            journal.Append(KeyWrite.Put("/c/revoked-users/acme/alice", "node-a"u8.ToArray()), made, 41);
            journal.Append(KeyWrite.Delete("/c/login-bans/source/198.18.0.9"), made.AddSeconds(5), 42);
        }
        using var again = WriteJournal.Open(path);
        var entries = again.Entries();
        Assert.Equal(2, entries.Count);
        Assert.Equal(("/c/revoked-users/acme/alice", false, made, 41L), (entries[0].Write.Key, entries[0].Write.IsDelete, entries[0].Made, entries[0].Seen));
        Assert.Equal("node-a", System.Text.Encoding.UTF8.GetString(entries[0].Write.Value.Span));
        Assert.Equal(("/c/login-bans/source/198.18.0.9", true, made.AddSeconds(5), 42L), (entries[1].Write.Key, entries[1].Write.IsDelete, entries[1].Made, entries[1].Seen));
    }

    [Fact]
    public void A_journal_kept_before_writes_had_times_opens_and_reads_them_as_made_at_an_unknown_time_knowing_nothing()
    {
        string path = _temp.File("old.cluster-pending");
        using (var db = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, value BLOB);
                INSERT INTO pending (key, value) VALUES ('/c/revoked-users/acme/bob', X'6E6F64652D61');
                """;
            cmd.ExecuteNonQuery();
        }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        using var journal = WriteJournal.Open(path);
        var made = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        journal.Append(KeyWrite.Put("/c/revoked-users/acme/carol", "node-a"u8.ToArray()), made, 7);
        var entries = journal.Entries();
        Assert.Equal(["/c/revoked-users/acme/bob", "/c/revoked-users/acme/carol"], entries.Select(e => e.Write.Key));
        Assert.Equal([null, made], entries.Select(e => e.Made));
        Assert.Equal([null, 7L], entries.Select(e => e.Seen));
    }
}
