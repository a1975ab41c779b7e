using System.Runtime.CompilerServices;
using Isotun.State.Cluster;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>
/// A node whose watch was away while the store dropped the history it had not read (a compaction) reads everything
/// again, and tells its server what changed meanwhile: login bans made and lifted included, which the login throttle
/// hears of only so.
/// </summary>
public sealed class SharedStateCompactionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private SqliteKeyValueStore Store() => new(_dir.File("cluster.db"), historyRevisions: 10);

    [Fact]
    public async Task After_a_compaction_a_node_hears_of_the_bans_made_and_lifted_while_its_watch_was_away()
    {
        var deaf = new DeafStore(Store());
        await using var a = await SharedState.JoinAsync(Store(), "/compaction", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(deaf, "/compaction", "node-b", 32, NullLogger.Instance);
        var seen = new List<SharedChange>();
        b.Changed = c => { lock (seen) seen.Add(c); };
        var until = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds());
        a.BanLogin("user", "acme/alice", until);
        await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.LoginBanned("user", "acme/alice", until)); }, "node b did not hear of the ban");

        deaf.Deafen();
        a.LiftLoginBan("user", "acme/alice");
        a.BanLogin("source", "198.18.9.1", until);
        for (int i = 0; i < 130; i++) await a.Store.CommitAsync([], [KeyWrite.Put($"/compaction/filler/{i}", new byte[] { 1 })]); // past the kept history (trimmed every 64 revisions)
        await Eventually.True(() => a.Status.PendingWrites == 0, "node a did not write its changes");
        deaf.Hear();

        await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.LoginBanLifted("user", "acme/alice")); }, "node b did not hear of the lifted ban");
        await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.LoginBanned("source", "198.18.9.1", until)); }, "node b did not hear of the new ban");
        Assert.True(deaf.Compacted, "the watch never met the compaction this test is about");
    }

    /// <summary>
    /// A user revoked and enabled again while a node's watch was away and the history went: the node sees only the
    /// enabling, and hears of it with its time, so that its sessions of the user from before end too.
    /// </summary>
    [Fact]
    public async Task After_a_compaction_a_node_hears_of_a_user_revoked_and_enabled_meanwhile()
    {
        var deaf = new DeafStore(Store());
        await using var a = await SharedState.JoinAsync(Store(), "/enabled", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(deaf, "/enabled", "node-b", 32, NullLogger.Instance);
        var seen = new List<SharedChange>();
        b.Changed = c => { lock (seen) seen.Add(c); };

        deaf.Deafen();
        Assert.True(a.RevokeUser("acme", "alice"));
        Assert.True(a.EnableUser("acme", "alice"));
        for (int i = 0; i < 130; i++) await a.Store.CommitAsync([], [KeyWrite.Put($"/enabled/filler/{i}", new byte[] { 1 })]);
        await Eventually.True(() => a.Status.PendingWrites == 0, "node a did not write its changes");
        var since = a.EnabledSince("acme", "alice")!.Value;
        deaf.Hear();

        await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.UserEnabled("acme", "alice", since)); }, "node b did not hear of the enabling");
        Assert.False(b.IsUserRevoked("acme", "alice"));
        Assert.Equal(since, b.EnabledSince("acme", "alice"));
        Assert.True(deaf.Compacted, "the watch never met the compaction this test is about");
    }

    /// <summary>
    /// A quiet cluster on a store busy with other keys: its watch follows the store's revision though none of its keys
    /// changes, so when it opens again (after a broken stream) the store's compaction has not taken its place away,
    /// and it reads nothing again.
    /// </summary>
    [Fact]
    public async Task A_quiet_node_on_a_busy_store_keeps_its_place_in_the_history_and_reads_nothing_again()
    {
        var cut = new DeafStore(Store());
        var others = Store();
        await using var a = await SharedState.JoinAsync(Store(), "/quiet", "node-a", 32, NullLogger.Instance);
        await using var b = await SharedState.JoinAsync(cut, "/quiet", "node-b", 32, NullLogger.Instance);
        var seen = new List<SharedChange>();
        b.Changed = c => { lock (seen) seen.Add(c); };

        // Past the kept history (trimmed every 64 revisions), in steps the live watch follows (etcd's, a stream, never
        // falls behind; this store's polls could).
        for (int i = 0; i < 130; i += 5)
        {
            long last = 0;
            for (int j = i; j < i + 5; j++) last = (await others.CommitAsync([], [KeyWrite.Put($"/busy/{j}", new byte[] { 1 })])).Revision;
            await Eventually.True(() => b.Status.Revision >= last, $"node b's place stayed at revision {b.Status.Revision}, before {last}");
        }

        cut.Deafen(); // the stream breaks; it opens again from node b's place
        cut.Hear();
        Assert.True(a.RevokeUser("acme", "alice"));
        await Eventually.True(() => { lock (seen) return seen.Contains(new SharedChange.UserRevoked("acme", "alice")); }, "node b did not hear of the revocation");
        Assert.False(cut.Compacted, "node b's watch opened again before the compacted history and read everything again");
    }

    /// <summary>A store whose watches break off while it is deaf, and open again only once it hears.</summary>
    private sealed class DeafStore(IKeyValueStore inner) : DelegatingStore(inner)
    {
        private volatile CancellationTokenSource _cut = new();
        private volatile TaskCompletionSource? _deaf;

        public bool Compacted { get; private set; }

        public void Deafen()
        {
            _deaf = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _cut.Cancel();
        }

        public void Hear()
        {
            _cut = new();
            Interlocked.Exchange(ref _deaf, null)?.TrySetResult();
        }

        public override async IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, [EnumeratorCancellation] CancellationToken ct = default, bool progress = false)
        {
            if (_deaf is { } deaf) await deaf.Task.WaitAsync(ct);
            using var both = CancellationTokenSource.CreateLinkedTokenSource(ct, _cut.Token);
            var events = base.WatchAsync(prefix, fromRevision, both.Token, progress).GetAsyncEnumerator(both.Token);
            try
            {
                while (true)
                {
                    try
                    {
                        if (!await events.MoveNextAsync()) yield break;
                    }
                    catch (KeyValueStoreException e) when (e.Error == KeyValueStoreError.Compacted)
                    {
                        Compacted = true;
                        throw;
                    }
                    yield return events.Current;
                }
            }
            finally
            {
                await events.DisposeAsync();
            }
        }
    }
}
