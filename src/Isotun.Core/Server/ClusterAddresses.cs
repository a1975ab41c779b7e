using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.State.Cluster;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.Server;

/// <summary>
/// A cluster node's IPv4 addresses for one tenant: taken from the cluster's address blocks (<see cref="BlockAllocator"/>)
/// rather than from the node's own copy of the pool, so that a user has one address on whichever node serves them,
/// and no two nodes hand out the same address. The allocator follows the node's lease (a new one after a lost one).
/// </summary>
public sealed class ClusterAddresses(SharedState shared, string tenant, IpNetwork pool, ILogger? log = null)
{
    private readonly SemaphoreSlim _open = new(1, 1);
    private const int MaxAttempts = 4;

    /// <summary>
    /// <c>cluster.binding-ttl-days</c> as configured now: a binding unused that long may have been released, and its
    /// address given to another user.
    /// </summary>
    public Func<TimeSpan> BindingTtl { get; init; } = static () => TimeSpan.FromDays(Configuration.ClusterConfig.DefaultBindingTtlDays);
    private (BlockAllocator Allocator, int Generation)? _current;

    /// <summary>
    /// The address bound to <paramref name="binding"/> (a user, or a user's further session), from this node's blocks,
    /// taken over from a dead node, or new. Control plane: waits for etcd (a few seconds at most).
    /// </summary>
    /// <exception cref="KeyValueStoreException">The cluster's store cannot be reached.</exception>
    public async Task<AddressClaim> ClaimAsync(string binding, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            for (int attempt = 1; ; attempt++)
            {
                var (allocator, generation) = await AllocatorAsync(timeout.Token).ConfigureAwait(false);
                try
                {
                    var claim = await allocator.AllocateAsync(binding, timeout.Token).ConfigureAwait(false);
                    // A claim that gave an address marks its binding as used now, which keeps it from expiring. A sweep
                    // on another node may have released it since it was read (a binding unused for the TTL): then the
                    // address may be another user's already, and the claim is made again.
                    if (claim.Address is null || await allocator.TouchAsync(binding, claim.Address, DateTimeOffset.UtcNow, timeout.Token).ConfigureAwait(false))
                        return claim;
                    if (attempt >= MaxAttempts)
                        throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"tenant {tenant}: the address binding of {binding} kept being released while it was claimed");
                    continue;
                }
                catch (KeyValueStoreException e) when (e.Error == KeyValueStoreError.LeaseNotFound && attempt == 1)
                {
                    // The store no longer knows the lease this node holds its blocks with: the node takes a new one, and
                    // the claim is made again with it (the blocks went with the old lease; each is held again as its users come back).
                    shared.LeaseRefused(allocator.Lease);
                    await shared.LeaseAfterAsync(generation, timeout.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new KeyValueStoreException(KeyValueStoreError.Unavailable, "the cluster's store did not answer within 5 s");
        }
    }

    /// <summary>
    /// Releases this tenant's bindings unused for <paramref name="unused"/> whose address no session of the cluster
    /// holds now (as the nodes publish them); returns the users released.
    /// </summary>
    public async Task<IReadOnlyList<string>> ExpireAsync(TimeSpan unused, CancellationToken ct)
    {
        var live = (await ClusterSessions.ListAsync(shared, ct).ConfigureAwait(false))
            .Where(s => s.Tenant == tenant && s.Address is not null).Select(s => s.Address!).ToHashSet(StringComparer.Ordinal);
        var (allocator, _) = await AllocatorAsync(ct).ConfigureAwait(false);
        return await allocator.ExpireAsync(unused, DateTimeOffset.UtcNow, live, ct).ConfigureAwait(false);
    }

    /// <summary>Marks <paramref name="bindings"/> (those of this node's live sessions) as used now.</summary>
    public async Task TouchAsync(IReadOnlyList<string> bindings, CancellationToken ct)
    {
        if (bindings.Count == 0) return;
        var (allocator, _) = await AllocatorAsync(ct).ConfigureAwait(false);
        await allocator.TouchAsync(bindings, DateTimeOffset.UtcNow, ct).ConfigureAwait(false);
    }

    private async Task<(BlockAllocator Allocator, int Generation)> AllocatorAsync(CancellationToken ct)
    {
        var (lease, generation) = shared.NodeLease;
        if (_current is { } c && c.Generation == generation) return c;
        await _open.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_current is { } again && again.Generation == generation) return again;
            // A node whose lease ran out holds no block, but its sessions still use the pool: they count against a change.
            var allocator = await BlockAllocator.OpenAsync(shared.Store, shared.Node, lease, tenant, pool, root: shared.Prefix + "ipam/",
                serving: async c => (await ClusterSessions.ListAsync(shared, c).ConfigureAwait(false)).Where(s => s.Tenant == tenant).Select(s => s.Node).ToHashSet(StringComparer.Ordinal),
                ct: ct).ConfigureAwait(false);
            if (allocator.PoolChange is { } change)
                (log ?? NullLogger.Instance).LogWarning("tenant={Tenant} cluster: the pool changes from {Before} to {Pool} in blocks of {Size} (no node held a block of it): {Released} address binding(s) outside it released; those users get new addresses",
                    tenant, change.Before, pool, allocator.Blocks.BlockSize, change.Released);
            _current = (allocator, generation);
            return (allocator, generation);
        }
        finally
        {
            _open.Release();
        }
    }

    /// <summary>
    /// Whether another node serves <paramref name="address"/> now to another session than <paramref name="session"/> (to
    /// any session when null), as the nodes publish their sessions (every 2 s, read at most a second ago; a dead node's
    /// entries go with its lease). The same session there is this one moving here (its node died, or its client came
    /// back through another node): not "elsewhere". With <paramref name="readNow"/>, the list is read for this call.
    /// </summary>
    /// <exception cref="KeyValueStoreException">The cluster's store cannot be reached.</exception>
    public async Task<bool> ServedElsewhereAsync(IPAddress address, Guid? session, CancellationToken ct, bool readNow = false)
    {
        string text = address.ToString(), id = session?.ToString("N") ?? "";
        return (await ClusterSessions.ListAsync(shared, ct, fresh: readNow ? null : TimeSpan.FromSeconds(1)).ConfigureAwait(false))
            .Any(s => s.Tenant == tenant && s.Connected && s.Address == text && s.Node != shared.Node && s.Id != id);
    }

    /// <summary>Ends a further session's binding (a user's own stays: it is their sticky address).</summary>
    public async Task ReleaseAsync(string binding, CancellationToken ct)
    {
        if (_current is { } c) await c.Allocator.ReleaseAsync(binding, ct).ConfigureAwait(false);
    }
}
