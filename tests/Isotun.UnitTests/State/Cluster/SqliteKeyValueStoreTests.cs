using System.Text;
using Isotun.State.Cluster;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// The key-value store contract on the SQLite store (each client its own instance on one temporary file), and what
/// only this store has: lease expiry on a <see cref="TimeProvider"/>, the kept history's bound, reopening the file.
/// </summary>
public sealed class SqliteKeyValueStoreTests : KeyValueStoreContract, IDisposable
{
    private readonly TempDirectory _temp = new();

    private string File => _temp.File("kv.db");

    protected override IKeyValueStore Connect() => new SqliteKeyValueStore(File);

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task A_lease_ends_exactly_at_its_ttl_on_the_stores_clock()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        await using var store = new SqliteKeyValueStore(File, clock);
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await store.CompareAndPutAsync("/k", "x"u8.ToArray(), 0, lease);

        clock.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1));
        Assert.NotNull(await store.GetAsync("/k"));

        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Null(await store.GetAsync("/k"));
        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.CompareAndPutAsync("/k", "y"u8.ToArray(), 0, lease));
        Assert.Equal(KeyValueStoreError.LeaseNotFound, e.Error);
    }

    [Fact]
    public async Task A_watch_older_than_the_kept_history_fails_as_compacted()
    {
        await using var store = new SqliteKeyValueStore(File, historyRevisions: 10);
        long first = 0;
        for (int i = 0; i < 130; i++)
        {
            var r = await store.CommitAsync([], [KeyWrite.Put("/k", Encoding.UTF8.GetBytes(i.ToString()))]);
            if (i == 0) first = r.Revision;
        }

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(async () =>
        {
            await foreach (var _ in store.WatchAsync("/", first)) { }
        });
        Assert.Equal(KeyValueStoreError.Compacted, e.Error);
        Assert.Contains("compacted", e.Message);
    }

    [Fact]
    public async Task Reopening_the_file_keeps_keys_revisions_and_leases()
    {
        long rev, lease;
        await using (var store = new SqliteKeyValueStore(File))
        {
            lease = await store.GrantLeaseAsync(TimeSpan.FromMinutes(5));
            rev = (await store.CompareAndPutAsync("/k", "x"u8.ToArray(), 0, lease)).Revision;
        }
        await using var again = new SqliteKeyValueStore(File);

        var entry = await again.GetAsync("/k");
        Assert.Equal((rev, lease), (entry!.ModRevision, entry.Lease));
        Assert.True((await again.CompareAndPutAsync("/k2", "y"u8.ToArray(), 0)).Revision > rev);
        Assert.NotEqual(lease, await again.GrantLeaseAsync(TimeSpan.FromMinutes(5)));
    }
}
