using System.Net;
using System.Text;
using Isotun.Protocol.Addressing;

namespace Isotun.State.Cluster;

/// <summary>
/// Hands out one tenant's addresses from several nodes at once through an <see cref="IKeyValueStore"/>, in blocks, as
/// Calico's IPAM does. The pool is cut into <see cref="AddressBlocks"/>; a node allocates only inside blocks it holds,
/// so nodes do not contend for addresses, and each node can route its blocks.
/// <para>Keys, under <c>root</c> (default <c>/isotun/ipam/</c>):</para>
/// <list type="bullet">
/// <item><c>pools/&lt;tenant&gt;</c> → <c>network blocksize</c>: written by the first node; a node with another
/// definition is refused while any node holds a block of the pool, since blocks would not line up. Once none does
/// (every node that ran the tenant stopped), the first node with a new definition writes it, keeping the bindings whose
/// address the new pool still hands out in blocks of the same size and releasing the others (<see cref="PoolChange"/>).</item>
/// <item><c>blocks/&lt;tenant&gt;/&lt;block start&gt;</c> → node id, attached to that node's lease: who holds the block.
/// When the node's lease ends the key vanishes and the block is orphaned.</item>
/// <item><c>addresses/&lt;tenant&gt;/&lt;block start&gt;/&lt;ip&gt;</c> → user, and <c>users/&lt;tenant&gt;/&lt;user&gt;</c>
/// → ip: the binding, in both directions, written and deleted together in one commit. Not attached to a lease: a
/// binding outlives the node that made it, so a user keeps the address across restarts and node deaths until it is
/// released.</item>
/// <item><c>seen/&lt;tenant&gt;/&lt;user&gt;</c> → Unix seconds: when the binding was last used (<see cref="TouchAsync"/>),
/// so that <see cref="ExpireAsync"/> can release bindings nobody used for long.</item>
/// </list>
/// <para>Why no address goes to two users: a new binding is one commit on the conditions "the user has no address",
/// "the address has no user" and "the block is still mine at the revision I read". The first two alone make the
/// binding unique whoever writes it; the third keeps a node whose lease just ended from writing into a block another
/// node has taken over.</para>
/// <para>Takeover: a block is claimed by creating its key only if absent, so of the nodes that race for an orphaned
/// block exactly one gets it, with its bindings intact. A node takes over a block when a user of it comes back
/// (<see cref="AllocateAsync"/>), or all orphaned blocks at once (<see cref="TakeOverOrphansAsync"/>). A node that
/// restarts with a new lease while its old one still runs adopts its own blocks by moving them to the new lease.</para>
/// <para>Limits: a node never borrows from another live node's block; when its blocks are full and every block of the
/// pool is held, it answers <see cref="AddressClaimOutcome.Exhausted"/> even if other nodes have room. Bindings stay
/// until <see cref="ReleaseAsync"/> or <see cref="ExpireAsync"/>.</para>
/// </summary>
public sealed class BlockAllocator
{
    public const string DefaultRoot = "/isotun/ipam/";
    public const int DefaultBlockSize = 16;

    /// <summary>How many times a call reads again after losing a race, before it gives up.</summary>
    private const int MaxAttempts = 100;

    private readonly IKeyValueStore _store;
    private readonly string _root;

    /// <summary>One new block at a time per node: concurrent calls that all find the node's blocks full claim one, not one each.</summary>
    private readonly SemaphoreSlim _claiming = new(1, 1);

    private BlockAllocator(IKeyValueStore store, string node, long lease, string tenant, AddressBlocks blocks, string root)
    {
        _store = store;
        Node = node;
        Lease = lease;
        Tenant = tenant;
        Blocks = blocks;
        _root = root;
    }

    public string Node { get; }

    /// <summary>The node's lease, which its blocks are attached to; the caller keeps it alive.</summary>
    public long Lease { get; }

    public string Tenant { get; }

    public AddressBlocks Blocks { get; }

    /// <summary>
    /// When this node's open changed the cluster's pool: the definition before, and how many bindings it released
    /// (their users get new addresses). Null when the pool was as recorded.
    /// </summary>
    public (string Before, int Released)? PoolChange { get; private set; }

    /// <summary>
    /// The allocator of <paramref name="node"/> for <paramref name="tenant"/>'s pool. The first node records the
    /// pool's definition. A node that gives another one fails with <see cref="InvalidOperationException"/> while any
    /// node holds a block of the recorded pool, or serves a session of the tenant as <paramref name="serving"/> says
    /// (the nodes that publish one: a node whose lease ran out holds no block until its users come back, yet its
    /// sessions use the recorded pool); when none does, its definition replaces the recorded one.
    /// </summary>
    public static async Task<BlockAllocator> OpenAsync(IKeyValueStore store, string node, long lease, string tenant, IpNetwork pool,
        int blockSize = DefaultBlockSize, string root = DefaultRoot, Func<CancellationToken, Task<IReadOnlyCollection<string>>>? serving = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        CheckName(node, nameof(node));
        CheckName(tenant, nameof(tenant));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lease);
        if (!root.StartsWith('/') || !root.EndsWith('/')) throw new ArgumentException($"root {root}: it starts and ends with '/'", nameof(root));
        var blocks = new AddressBlocks(pool, blockSize);
        var allocator = new BlockAllocator(store, node, lease, tenant, blocks, root);
        var definition = $"{pool} {blockSize}";
        var key = $"{root}pools/{tenant}";
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            if ((await store.CompareAndPutAsync(key, Utf8(definition), 0, ct: ct).ConfigureAwait(false)).Succeeded) return allocator;
            if (await store.GetAsync(key, ct).ConfigureAwait(false) is not { } existing) continue;
            string before = Text(existing.Value);
            if (before == definition) return allocator;
            // Every block key counts, also those of the recorded pool that the new one does not hold.
            var held = (await store.RangeAsync(allocator.PoolPrefix("blocks"), ct).ConfigureAwait(false)).Entries;
            IReadOnlyCollection<string> servers = held.Count > 0 || serving is null ? [] : await serving(ct).ConfigureAwait(false);
            if (held.Count > 0 || servers.Count > 0)
            {
                string holders = string.Join(", ", (held.Count > 0 ? held.Select(b => Text(b.Value)) : servers).Distinct().Order(StringComparer.Ordinal));
                throw new InvalidOperationException(
                    $"tenant {tenant}: this node's pool is {pool} in blocks of {blockSize}, but the cluster's is {before}, and node(s) {holders} "
                    + (held.Count > 0 ? "hold blocks of it; " : "serve sessions from it; ")
                    + "every node must give the same pool and block size: to change them, stop every node that runs the tenant, then start them with the new ones");
            }
            bool sameBlocks = before.Split(' ') is [_, var size] && size == blockSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
            int released = await allocator.ReleaseOutsideAsync(sameBlocks, ct).ConfigureAwait(false);
            if ((await store.CompareAndPutAsync(key, Utf8(definition), existing.ModRevision, ct: ct).ConfigureAwait(false)).Succeeded)
            {
                allocator.PoolChange = (before, released);
                return allocator;
            }
        }
        throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"tenant {tenant}: the pool's definition kept changing; it was not settled");
    }

    /// <summary>
    /// For a new definition of the pool, made while no node holds a block: releases every binding whose address this
    /// pool does not hand out, or every binding when the block size changed (its keys name blocks that no longer line
    /// up). Each key is deleted only if unchanged since read. Returns how many users lost their binding.
    /// </summary>
    private async Task<int> ReleaseOutsideAsync(bool sameBlocks, CancellationToken ct)
    {
        bool Keep(string text) => sameBlocks && IPAddress.TryParse(text, out var address) && Blocks.IsUsable(address);
        var addressesPrefix = PoolPrefix("addresses");
        foreach (var e in (await _store.RangeAsync(addressesPrefix, ct).ConfigureAwait(false)).Entries)
            if (!Keep(e.Key[(e.Key.LastIndexOf('/') + 1)..]))
                await _store.CommitAsync([new(e.Key, e.ModRevision)], [KeyWrite.Delete(e.Key)], ct).ConfigureAwait(false);
        var usersPrefix = PoolPrefix("users");
        int released = 0;
        foreach (var e in (await _store.RangeAsync(usersPrefix, ct).ConfigureAwait(false)).Entries)
        {
            if (Keep(Text(e.Value))) continue;
            string user = e.Key[usersPrefix.Length..];
            if ((await _store.CommitAsync([new(e.Key, e.ModRevision)], [KeyWrite.Delete(e.Key), KeyWrite.Delete(SeenKey(user))], ct).ConfigureAwait(false)).Succeeded)
                released++;
        }
        return released;
    }

    private static void CheckName(string name, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(name, what);
        if (name.Contains('/')) throw new ArgumentException($"{what} {name}: a name has no '/'", what);
    }

    private string PoolPrefix(string kind) => $"{_root}{kind}/{Tenant}/";

    private string BlockKey(int index) => PoolPrefix("blocks") + Blocks.Start(index);

    private string BlockAddresses(int index) => $"{PoolPrefix("addresses")}{Blocks.Start(index)}/";

    private string AddressKey(IPAddress address) => BlockAddresses(Blocks.IndexOf(address)) + address;

    private string UserKey(string user) => PoolPrefix("users") + user;

    private string SeenKey(string user) => PoolPrefix("seen") + user;

    /// <summary>
    /// Records that <paramref name="user"/>'s binding to <paramref name="address"/> was used at <paramref name="now"/>,
    /// if it is still bound there: false when it was released or moved meanwhile (a sweep on another node found it unused
    /// since <see cref="AllocateAsync"/> read it), and the address must not be handed out. Either the sweep's commit or
    /// this one fails: each is made on the other's key being unchanged.
    /// </summary>
    public async Task<bool> TouchAsync(string user, IPAddress address, DateTimeOffset now, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(user);
        var bound = await _store.GetAsync(UserKey(user), ct).ConfigureAwait(false);
        if (bound is null || Text(bound.Value) != address.ToString()) return false;
        return (await _store.CommitAsync([new(bound.Key, bound.ModRevision)], [KeyWrite.Put(SeenKey(user), UnixSeconds.Bytes(now))], ct).ConfigureAwait(false)).Succeeded;
    }

    /// <summary>Records that the bindings of <paramref name="users"/> are in use at <paramref name="now"/>, in commits of at most 64.</summary>
    public async Task TouchAsync(IReadOnlyList<string> users, DateTimeOffset now, CancellationToken ct = default)
    {
        var at = UnixSeconds.Bytes(now);
        foreach (var chunk in users.Chunk(64))
            await _store.CommitAsync([], [.. chunk.Select(user => KeyWrite.Put(SeenKey(user), at))], ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Releases the bindings not used for <paramref name="unused"/> whose address no session holds now
    /// (<paramref name="live"/>), so that users who left do not keep the pool's addresses for ever. A binding from
    /// before use was recorded gets <paramref name="now"/> as its last use, and its clock starts. Safe on several nodes
    /// at once: a binding used or changed meanwhile is left alone. Returns the users whose bindings were released.
    /// </summary>
    public async Task<IReadOnlyList<string>> ExpireAsync(TimeSpan unused, DateTimeOffset now, IReadOnlySet<string> live, CancellationToken ct = default)
    {
        var usersPrefix = PoolPrefix("users");
        var seenPrefix = PoolPrefix("seen");
        var bindings = await _store.RangeAsync(usersPrefix, ct).ConfigureAwait(false);
        var seen = (await _store.RangeAsync(seenPrefix, ct).ConfigureAwait(false)).Entries.ToDictionary(e => e.Key[seenPrefix.Length..], StringComparer.Ordinal);
        var released = new List<string>();
        foreach (var bound in bindings.Entries)
        {
            string user = bound.Key[usersPrefix.Length..];
            if (live.Contains(Text(bound.Value))) continue;
            if (!seen.TryGetValue(user, out var last))
            {
                await _store.CompareAndPutAsync(SeenKey(user), UnixSeconds.Bytes(now), 0, ct: ct).ConfigureAwait(false);
                continue;
            }
            if (UnixSeconds.Parse(last.Value.Span) is not { } at || now - at < unused) continue;
            if (!IPAddress.TryParse(Text(bound.Value), out var address) || Blocks.IndexOf(address) < 0) continue;
            var addressKey = AddressKey(address);
            var owner = await _store.GetAsync(addressKey, ct).ConfigureAwait(false);
            KeyCondition[] unchanged = [new(bound.Key, bound.ModRevision), new(last.Key, last.ModRevision), new(addressKey, owner?.ModRevision ?? 0)];
            if ((await _store.CommitAsync(unchanged, [KeyWrite.Delete(bound.Key), KeyWrite.Delete(addressKey), KeyWrite.Delete(last.Key)], ct).ConfigureAwait(false)).Succeeded)
                released.Add(user);
        }
        return released;
    }

    /// <summary>
    /// The user's address: the one it is bound to (taking its block over if the node that held it is gone), or a new
    /// one from this node's blocks (claiming a free block when they are full).
    /// </summary>
    public async Task<AddressClaim> AllocateAsync(string user, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(user);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var bound = await _store.GetAsync(UserKey(user), ct).ConfigureAwait(false);
            var claim = bound is null ? await NewAsync(user, ct).ConfigureAwait(false) : await BoundAsync(bound, ct).ConfigureAwait(false);
            if (claim is not null) return claim;
        }
        throw new KeyValueStoreException(KeyValueStoreError.Unavailable,
            $"tenant {Tenant}: no address settled for {user} after {MaxAttempts} attempts (other nodes kept changing the same keys)");
    }

    /// <summary>The user's bound address, with its block held by this node if it can be; null to read again.</summary>
    private async Task<AddressClaim?> BoundAsync(KeyValueEntry bound, CancellationToken ct)
    {
        var address = Parse(bound);
        int index = Blocks.IndexOf(address);
        var block = await _store.GetAsync(BlockKey(index), ct).ConfigureAwait(false);
        if (block is not null && Text(block.Value) != Node) return new AddressClaim(AddressClaimOutcome.HeldElsewhere, address, Text(block.Value));
        // Orphaned (its node's lease ended) or ours under an old lease (this node restarted): hold it with our lease.
        if ((block is null || block.Lease != Lease) && !await HoldAsync(index, block?.ModRevision ?? 0, ct).ConfigureAwait(false)) return null;
        return new AddressClaim(AddressClaimOutcome.Sticky, address, Node);
    }

    /// <summary>A new address for the user from this node's blocks, a newly claimed block, or exhaustion; null to read again.</summary>
    private async Task<AddressClaim?> NewAsync(string user, CancellationToken ct)
    {
        var held = await HeldBlocksAsync(ct).ConfigureAwait(false);
        foreach (var (index, block) in held)
        {
            if (Text(block.Value) != Node) continue;
            if (block.Lease != Lease)
            {
                await HoldAsync(index, block.ModRevision, ct).ConfigureAwait(false); // adopt it from our previous run
                return null;
            }
            var free = await FreeAddressAsync(index, ct).ConfigureAwait(false);
            if (free is null) continue;
            var addressKey = AddressKey(free);
            var commit = await _store.CommitAsync(
                [KeyCondition.Absent(UserKey(user)), KeyCondition.Absent(addressKey), new KeyCondition(BlockKey(index), block.ModRevision)],
                [KeyWrite.Put(addressKey, Utf8(user)), KeyWrite.Put(UserKey(user), Utf8(free.ToString()))], ct).ConfigureAwait(false);
            return commit.Succeeded ? new AddressClaim(AddressClaimOutcome.New, free, Node) : null;
        }
        // No room in our blocks: claim one nobody holds.
        await _claiming.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var now = await HeldBlocksAsync(ct).ConfigureAwait(false);
            if (now.Any(b => Text(b.Value.Value) == Node && !held.ContainsKey(b.Key))) return null; // another call claimed one meanwhile
            // Start at a place of the node's own (FNV-1a of its id, the same in every process), so that nodes rarely race.
            uint hash = 2166136261;
            foreach (char c in Node) hash = (hash ^ c) * 16777619;
            int start = (int)(hash % (uint)Blocks.Count);
            for (int i = 0; i < Blocks.Count; i++)
            {
                int index = (start + i) % Blocks.Count;
                if (!now.ContainsKey(index) && await HoldAsync(index, 0, ct).ConfigureAwait(false)) return null; // allocate in it on the next read
            }
            return new AddressClaim(AddressClaimOutcome.Exhausted, null, null);
        }
        finally
        {
            _claiming.Release();
        }
    }

    private async Task<IPAddress?> FreeAddressAsync(int index, CancellationToken ct)
    {
        var prefix = BlockAddresses(index);
        var used = await _store.RangeAsync(prefix, ct).ConfigureAwait(false);
        var taken = used.Entries.Select(e => e.Key[prefix.Length..]).ToHashSet(StringComparer.Ordinal);
        // A random free one, so that concurrent calls on one node rarely race for the same address.
        var free = Blocks.Usable(index).Where(a => !taken.Contains(a.ToString())).ToList();
        return free.Count == 0 ? null : free[Random.Shared.Next(free.Count)];
    }

    /// <summary>Puts the block's key with this node and lease if it still has <paramref name="revision"/> (0: absent).</summary>
    private async Task<bool> HoldAsync(int index, long revision, CancellationToken ct) =>
        (await _store.CompareAndPutAsync(BlockKey(index), Utf8(Node), revision, Lease, ct).ConfigureAwait(false)).Succeeded;

    /// <summary>Every held block of the pool, by index.</summary>
    private async Task<SortedDictionary<int, KeyValueEntry>> HeldBlocksAsync(CancellationToken ct)
    {
        var prefix = PoolPrefix("blocks");
        var range = await _store.RangeAsync(prefix, ct).ConfigureAwait(false);
        var held = new SortedDictionary<int, KeyValueEntry>();
        foreach (var e in range.Entries)
            if (IPAddress.TryParse(e.Key[prefix.Length..], out var start) && Blocks.IndexOf(start) is var index and >= 0)
                held[index] = e;
        return held;
    }

    /// <summary>
    /// Holds every block that has bindings but no node (its node's lease ended), each claimed only if still absent;
    /// returns the starts of the blocks this node got.
    /// </summary>
    public async Task<IReadOnlyList<IPAddress>> TakeOverOrphansAsync(CancellationToken ct = default)
    {
        var held = await HeldBlocksAsync(ct).ConfigureAwait(false);
        var prefix = PoolPrefix("addresses");
        var bound = await _store.RangeAsync(prefix, ct).ConfigureAwait(false);
        var orphans = new SortedSet<int>();
        foreach (var e in bound.Entries)
        {
            var rest = e.Key[prefix.Length..];
            int slash = rest.IndexOf('/');
            if (slash > 0 && IPAddress.TryParse(rest[..slash], out var start) && Blocks.IndexOf(start) is var index and >= 0 && !held.ContainsKey(index))
                orphans.Add(index);
        }
        var taken = new List<IPAddress>();
        foreach (var index in orphans)
            if (await HoldAsync(index, 0, ct).ConfigureAwait(false))
                taken.Add(Blocks.Start(index));
        return taken;
    }

    /// <summary>Ends the user's binding, so its address can go to another user; false when it had none.</summary>
    public async Task<bool> ReleaseAsync(string user, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(user);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            if (await _store.GetAsync(UserKey(user), ct).ConfigureAwait(false) is not { } bound) return false;
            var addressKey = AddressKey(Parse(bound));
            var address = await _store.GetAsync(addressKey, ct).ConfigureAwait(false);
            KeyCondition[] conditions = [new(bound.Key, bound.ModRevision), new(addressKey, address?.ModRevision ?? 0)];
            if ((await _store.CommitAsync(conditions, [KeyWrite.Delete(bound.Key), KeyWrite.Delete(addressKey), KeyWrite.Delete(SeenKey(user))], ct).ConfigureAwait(false)).Succeeded)
                return true;
        }
        throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"tenant {Tenant}: the binding of {user} kept changing; it was not released");
    }

    private IPAddress Parse(KeyValueEntry bound) =>
        IPAddress.TryParse(Text(bound.Value), out var address) && Blocks.IndexOf(address) >= 0
            ? address
            : throw new InvalidOperationException($"tenant {Tenant}: {bound.Key} holds {Text(bound.Value)}, which is not an address of the pool {Blocks.Network}");

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);
}
