using System.Text;
using Isotun.State.Cluster;
using Isotun.UnitTests.InProcess;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// What every <see cref="IKeyValueStore"/> does, run against each implementation (a subclass per store): the SQLite
/// store on a temporary file and etcd, a real server. Each test works under a prefix of its own, and its clients are
/// separate instances on one backing store, as the nodes of a cluster are. Leases run on real time (etcd's clock), so
/// the lease tests take a few seconds.
/// </summary>
public abstract class KeyValueStoreContract : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(1);

    private readonly List<IKeyValueStore> _opened = [];

    /// <summary>A unique prefix per test, so tests on a shared etcd never see each other's keys.</summary>
    protected string P => _prefix ??= KeyPrefix;

    private string? _prefix;

    /// <summary>Where <see cref="P"/> is made: a store whose user may use some keys only puts it under those.</summary>
    protected virtual string KeyPrefix => $"/test-{Guid.NewGuid():N}/";

    /// <summary>A new client of the one backing store this test uses (skips the test when that store is missing).</summary>
    protected abstract IKeyValueStore Connect();

    protected IKeyValueStore Store()
    {
        var store = Connect();
        _opened.Add(store);
        return store;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var s in _opened) await s.DisposeAsync();
    }

    protected static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    private static string S(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    [SkippableFact]
    public async Task A_missing_key_reads_as_null()
    {
        Assert.Null(await Store().GetAsync(P + "nothing"));
    }

    [SkippableFact]
    public async Task Every_write_gets_a_higher_revision_and_the_key_counts_its_versions()
    {
        var store = Store();
        var first = await store.CompareAndPutAsync(P + "k", B("one"), 0);
        var e1 = await store.GetAsync(P + "k");
        var second = await store.CompareAndPutAsync(P + "k", B("two"), e1!.ModRevision);
        var e2 = await Store().GetAsync(P + "k");

        Assert.True(first.Succeeded && second.Succeeded);
        Assert.True(second.Revision > first.Revision);
        Assert.Equal(new[] { first.Revision, first.Revision, 1L }, new[] { e1.CreateRevision, e1.ModRevision, e1.Version });
        Assert.Equal(new[] { first.Revision, second.Revision, 2L }, new[] { e2!.CreateRevision, e2.ModRevision, e2.Version });
        Assert.Equal("two", S(e2.Value));
        Assert.Equal(0, e2.Lease);
    }

    [SkippableFact]
    public async Task Create_if_absent_succeeds_once_and_leaves_the_first_value()
    {
        var (a, b) = (Store(), Store());
        var won = await a.CompareAndPutAsync(P + "k", B("a"), 0);
        var lost = await b.CompareAndPutAsync(P + "k", B("b"), 0);

        Assert.True(won.Succeeded);
        Assert.False(lost.Succeeded);
        Assert.True(lost.Revision >= won.Revision, "a failed commit reports the store's current revision");
        Assert.Equal("a", S((await b.GetAsync(P + "k"))!.Value));
    }

    [SkippableFact]
    public async Task Compare_and_put_wins_exactly_once_among_concurrent_writers_expecting_the_same_revision()
    {
        var seed = await Store().CompareAndPutAsync(P + "k", B("seed"), 0);
        var writers = Enumerable.Range(0, 8).Select(_ => Store()).ToList();
        using var go = new ManualResetEventSlim();
        var tasks = writers.Select((w, i) => Task.Run(async () =>
        {
            go.Wait();
            return (i, await w.CompareAndPutAsync(P + "k", B($"writer {i}"), seed.Revision));
        })).ToList();
        go.Set();
        var results = await Task.WhenAll(tasks);

        var winners = results.Where(r => r.Item2.Succeeded).ToList();
        Assert.Single(winners);
        var final = await Store().GetAsync(P + "k");
        Assert.Equal($"writer {winners[0].i}", S(final!.Value));
        Assert.Equal(winners[0].Item2.Revision, final.ModRevision);
        Assert.Equal(2, final.Version);
    }

    [SkippableFact]
    public async Task Compare_and_delete_deletes_only_at_the_expected_revision()
    {
        var store = Store();
        var put = await store.CompareAndPutAsync(P + "k", B("v"), 0);

        var stale = await store.CompareAndDeleteAsync(P + "k", put.Revision + 1000);
        Assert.False(stale.Succeeded);
        Assert.NotNull(await store.GetAsync(P + "k"));

        var done = await Store().CompareAndDeleteAsync(P + "k", put.Revision);
        Assert.True(done.Succeeded);
        Assert.True(done.Revision > put.Revision);
        Assert.Null(await store.GetAsync(P + "k"));
    }

    [SkippableFact]
    public async Task A_commit_writes_all_or_nothing()
    {
        var store = Store();
        var a = await store.CompareAndPutAsync(P + "a", B("a1"), 0);

        var refused = await store.CommitAsync([new KeyCondition(P + "a", a.Revision), KeyCondition.Absent(P + "a")],
            [KeyWrite.Put(P + "a", B("a2")), KeyWrite.Put(P + "b", B("b1"))]);
        Assert.False(refused.Succeeded);
        Assert.Equal("a1", S((await store.GetAsync(P + "a"))!.Value));
        Assert.Null(await store.GetAsync(P + "b"));

        var applied = await store.CommitAsync([new KeyCondition(P + "a", a.Revision), KeyCondition.Absent(P + "b")],
            [KeyWrite.Delete(P + "a"), KeyWrite.Put(P + "b", B("b1"))]);
        Assert.True(applied.Succeeded);
        Assert.Null(await store.GetAsync(P + "a"));
        var b = await store.GetAsync(P + "b");
        Assert.Equal(applied.Revision, b!.ModRevision); // one revision for the whole commit
    }

    [SkippableFact]
    public async Task A_range_returns_the_prefix_in_key_order_and_nothing_else()
    {
        var store = Store();
        foreach (var k in new[] { "b/2", "a", "b/1", "b", "c/1" })
            await store.CompareAndPutAsync(P + k, B(k), 0);

        var range = await Store().RangeAsync(P + "b/");

        Assert.Equal(new[] { P + "b/1", P + "b/2" }, range.Entries.Select(e => e.Key));
        Assert.Equal(new[] { "b/1", "b/2" }, range.Entries.Select(e => S(e.Value)));
        Assert.True(range.Revision >= range.Entries.Max(e => e.ModRevision));
        Assert.Empty((await store.RangeAsync(P + "zzz/")).Entries);
    }

    /// <summary>A range longer than one answer of the store (etcd's is read in pages) comes whole, in order, once each.</summary>
    [SkippableFact]
    public async Task A_long_range_comes_whole_in_key_order()
    {
        var store = Store();
        var keys = Enumerable.Range(0, 130).Select(i => $"{P}long/{i:D3}").ToList();
        for (int i = 0; i < keys.Count; i += KeyValueLimits.MaxOperations)
            await store.CommitAsync([], [.. keys.Skip(i).Take(KeyValueLimits.MaxOperations).Select(k => KeyWrite.Put(k, B(k)))]);
        await store.CompareAndPutAsync(P + "long0", B("x"), 0); // past the prefix's end
        var range = await store.RangeAsync(P + "long/");
        Assert.Equal(keys, range.Entries.Select(e => e.Key));
    }

    [SkippableFact]
    public async Task An_expired_lease_takes_its_keys_and_a_watch_sees_the_delete()
    {
        var (owner, watcher) = (Store(), Store());
        var free = await owner.CompareAndPutAsync(P + "free", B("y"), 0);
        var lease = await owner.GrantLeaseAsync(Ttl);
        var held = await owner.CompareAndPutAsync(P + "held", B("x"), 0, lease);

        var events = await Collect(watcher.WatchAsync(P, free.Revision), 3);

        Assert.Equal(
            [(KeyValueEventKind.Put, P + "free"), (KeyValueEventKind.Put, P + "held"), (KeyValueEventKind.Delete, P + "held")],
            events.Select(e => (e.Kind, e.Key)));
        Assert.True(events[2].Revision > held.Revision);
        Assert.Null(await watcher.GetAsync(P + "held"));
        Assert.NotNull(await watcher.GetAsync(P + "free"));
    }

    [SkippableFact]
    public async Task A_kept_alive_lease_outlives_its_ttl_and_ends_after_the_keepalive_stops()
    {
        var store = Store();
        var ttl = TimeSpan.FromSeconds(3); // renewals come every second: a busy machine may delay one, not three
        var lease = await store.GrantLeaseAsync(ttl);
        await store.CompareAndPutAsync(P + "held", B("x"), 0, lease);
        Assert.Equal(lease, (await Store().GetAsync(P + "held"))!.Lease);
        var keepAlive = store.KeepAlive(lease);

        await Task.Delay(ttl * 2);
        Assert.NotNull(await Store().GetAsync(P + "held"));
        Assert.False(keepAlive.Lost.IsCompleted);

        await keepAlive.DisposeAsync();
        Assert.True(await Eventually.Holds(async () => await store.GetAsync(P + "held") is null), "the key outlived its lease after the keepalive stopped");
    }

    [SkippableFact]
    public async Task A_revoked_lease_takes_its_keys_at_once_and_its_keepalive_reports_it_lost()
    {
        var store = Store();
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(3)); // the keepalive finds out at its next renewal, a TTL/3 later
        await store.CompareAndPutAsync(P + "held", B("x"), 0, lease);
        await using var keepAlive = store.KeepAlive(lease);

        await Store().RevokeLeaseAsync(lease);

        Assert.Null(await store.GetAsync(P + "held"));
        Assert.Same(keepAlive.Lost, await Task.WhenAny(keepAlive.Lost, Task.Delay(Deadline)));
        await store.RevokeLeaseAsync(lease); // again: nothing to do, no error
    }

    [SkippableFact]
    public async Task A_put_with_an_ended_lease_is_refused_and_writes_nothing()
    {
        var store = Store();
        var lease = await store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await store.RevokeLeaseAsync(lease);

        var e = await Assert.ThrowsAsync<KeyValueStoreException>(() => store.CompareAndPutAsync(P + "k", B("x"), 0, lease));

        Assert.Equal(KeyValueStoreError.LeaseNotFound, e.Error);
        Assert.Null(await store.GetAsync(P + "k"));
    }

    [SkippableFact]
    public async Task A_watch_from_an_old_revision_replays_the_history_after_it()
    {
        var store = Store();
        await store.CompareAndPutAsync(P + "a", B("1"), 0);
        var r2 = await store.CompareAndPutAsync(P + "a", B("2"), (await store.GetAsync(P + "a"))!.ModRevision);
        var r3 = await store.CompareAndDeleteAsync(P + "a", r2.Revision);
        var r4 = await store.CompareAndPutAsync(P + "b", B("3"), 0);

        var events = await Collect(Store().WatchAsync(P, r2.Revision), 3);

        Assert.Equal(
            [(KeyValueEventKind.Put, P + "a", "2", r2.Revision), (KeyValueEventKind.Delete, P + "a", "", r3.Revision), (KeyValueEventKind.Put, P + "b", "3", r4.Revision)],
            events.Select(e => (e.Kind, e.Key, S(e.Value), e.Revision)));
    }

    [SkippableFact]
    public async Task A_watch_on_a_prefix_sees_nothing_of_other_prefixes()
    {
        var store = Store();
        var start = await store.RangeAsync(P);
        await store.CompareAndPutAsync(P + "other/1", B("x"), 0);
        await store.CompareAndPutAsync(P + "mine", B("x"), 0); // shares the text but not the prefix "mine/"
        await store.CompareAndPutAsync(P + "mine/1", B("x"), 0);

        var events = await Collect(Store().WatchAsync(P + "mine/", start.Revision + 1), 1);

        Assert.Equal(P + "mine/1", Assert.Single(events).Key);
    }

    [SkippableFact]
    public async Task A_watch_with_progress_says_how_far_it_has_delivered_while_only_other_prefixes_change()
    {
        var store = Store();
        var start = await store.RangeAsync(P);
        await store.CompareAndPutAsync(P + "mine/1", B("x"), 0);
        var other = await store.CompareAndPutAsync(P + "other/1", B("x"), 0);

        // etcd answers the watch's progress requests (every 10 s); the SQLite store says it as it polls.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<KeyValueEvent>();
        await foreach (var e in Store().WatchAsync(P + "mine/", start.Revision + 1, cts.Token, progress: true))
        {
            seen.Add(e);
            if (e.Kind == KeyValueEventKind.Progress && e.Revision >= other.Revision) break;
        }

        Assert.Equal(P + "mine/1", seen[0].Key);
        Assert.All(seen.Skip(1), e => Assert.Equal((KeyValueEventKind.Progress, ""), (e.Kind, e.Key)));
        Assert.True(seen[^1].Revision >= other.Revision, $"no progress up to revision {other.Revision}");
        Assert.DoesNotContain(await Collect(Store().WatchAsync(P, start.Revision + 1), 2), e => e.Kind == KeyValueEventKind.Progress);
    }

    [SkippableFact]
    public async Task A_watch_from_now_sees_only_later_changes_made_by_another_client()
    {
        var (writer, watcher) = (Store(), Store());
        await writer.CompareAndPutAsync(P + "before", B("x"), 0);
        using var cts = new CancellationTokenSource(Deadline);
        await using var watch = watcher.WatchAsync(P, 0, cts.Token).GetAsyncEnumerator(cts.Token);
        var next = watch.MoveNextAsync().AsTask(); // the watch starts here; when it is in place is not known, so keep writing
        for (int i = 0; !next.IsCompleted && !cts.IsCancellationRequested; i++)
        {
            await writer.CompareAndPutAsync(P + $"after/{i}", B("y"), 0);
            await Task.WhenAny(next, Task.Delay(100));
        }

        Assert.True(await next);
        Assert.Equal((KeyValueEventKind.Put, "y"), (watch.Current.Kind, S(watch.Current.Value)));
        Assert.StartsWith(P + "after/", watch.Current.Key);
    }

    [SkippableFact]
    public async Task Odd_keys_and_a_value_at_the_cap_round_trip()
    {
        var store = Store();
        var key = P + "ключ 🔑 with space\nand\ttab\0nul";
        var big = new byte[KeyValueLimits.MaxValueBytes];
        Random.Shared.NextBytes(big);

        Assert.True((await store.CompareAndPutAsync(key, big, 0)).Succeeded);

        var back = await Store().GetAsync(key);
        Assert.Equal(key, back!.Key);
        Assert.Equal(big, back.Value.ToArray());
        Assert.Equal(key, Assert.Single((await store.RangeAsync(P + "ключ")).Entries).Key);
    }

    [SkippableFact]
    public async Task Hostile_inputs_are_refused_with_a_reason_before_anything_is_written()
    {
        var store = Store();
        var empty = await Assert.ThrowsAsync<ArgumentException>(() => store.CompareAndPutAsync("", B("x"), 0));
        Assert.Contains("empty", empty.Message);
        var huge = await Assert.ThrowsAsync<ArgumentException>(() => store.CompareAndPutAsync(P + "k", new byte[KeyValueLimits.MaxValueBytes + 1], 0));
        Assert.Contains($"at most {KeyValueLimits.MaxValueBytes}", huge.Message);
        var longKey = await Assert.ThrowsAsync<ArgumentException>(() => store.GetAsync(P + new string('k', KeyValueLimits.MaxKeyBytes)));
        Assert.Contains($"at most {KeyValueLimits.MaxKeyBytes}", longKey.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => store.GetAsync(P + "\ud800"));
        await Assert.ThrowsAsync<ArgumentException>(() => store.RangeAsync(""));
        await Assert.ThrowsAsync<ArgumentException>(() => store.CommitAsync([], [KeyWrite.Put(P + "k", B("1")), KeyWrite.Put(P + "k", B("2"))]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.CompareAndPutAsync(P + "k", B("x"), -1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.CompareAndDeleteAsync(P + "k", 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.GrantLeaseAsync(TimeSpan.Zero));
        await Assert.ThrowsAsync<ArgumentException>(async () =>
        {
            await foreach (var _ in store.WatchAsync("", 0)) { }
        });

        Assert.Empty((await store.RangeAsync(P)).Entries);
    }

    /// <summary>The first <paramref name="count"/> events of a watch, failing the test if they do not come in time.</summary>
    private static async Task<List<KeyValueEvent>> Collect(IAsyncEnumerable<KeyValueEvent> watch, int count)
    {
        var seen = new List<KeyValueEvent>();
        using var cts = new CancellationTokenSource(Deadline);
        try
        {
            await foreach (var e in watch.WithCancellation(cts.Token))
            {
                seen.Add(e);
                if (seen.Count == count) return seen;
            }
        }
        catch (OperationCanceledException)
        {
        }
        Assert.Fail($"the watch gave {seen.Count} of {count} events in {Deadline.TotalSeconds} s: {string.Join(", ", seen.Select(e => $"{e.Kind} {e.Key}"))}");
        return seen;
    }
}
