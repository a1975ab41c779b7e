using System.Text.Json;
using Isotun.State.Cluster;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>One session as a cluster node publishes it, for the cluster-wide list.</summary>
public sealed record ClusterSession(string Id, string Node, string Tenant, string User, string? Address, string? Source, DateTimeOffset Since, bool Connected);

/// <summary>
/// A cluster node's sessions in etcd, so that any node lists the whole cluster's (<c>isotun sessions --cluster</c>):
/// every <see cref="Every"/> the node publishes what changed (under its lease, so a dead node's entries go with it).
/// A kick of a session on another node needs none of this: it revokes the session's cookie, which every node hears.
/// </summary>
internal sealed class ClusterSessions(IConnectionHost server, SharedState shared, ILogger log)
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(2);

    /// <summary>How often a node looks for address bindings nobody used for <c>cluster.binding-ttl-days</c>.</summary>
    public static readonly TimeSpan ExpireEvery = TimeSpan.FromHours(1);

    /// <summary>How long one look for unused bindings may take.</summary>
    private static readonly TimeSpan ExpireDeadline = TimeSpan.FromSeconds(60);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task RunAsync(CancellationToken stopping)
    {
        // The first look a minute after start, when the nodes have published their sessions.
        var nextExpiry = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                shared.PublishSessions(server.Sessions.All.ToDictionary(s => s.Id, s => JsonSerializer.SerializeToUtf8Bytes(Summary(s), Json)));
                if (DateTimeOffset.UtcNow >= nextExpiry)
                {
                    nextExpiry = DateTimeOffset.UtcNow + ExpireEvery;
                    // Within a deadline: a store that takes calls but does not answer them must not stop the publishing.
                    using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    deadline.CancelAfter(ExpireDeadline);
                    try
                    {
                        await ExpireBindingsAsync(deadline.Token).ConfigureAwait(false);
                        await ForgetOldEnablingsAsync(deadline.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                    {
                        log.LogWarning("cluster: the look for unused address bindings took over {Seconds} s and was given up; it is tried again in an hour", ExpireDeadline.TotalSeconds);
                    }
                }
                await Task.Delay(Every, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is InvalidOperationException or JsonException)
            {
                log.LogWarning("cluster: publishing this node's sessions failed: {Error}", e.Message);
            }
        }
    }

    /// <summary>
    /// Releases, in each tenant, the address bindings nobody used for <c>cluster.binding-ttl-days</c>. This node's live
    /// sessions mark theirs as used first: a tunnel up for longer than that keeps its address even while the session
    /// lists miss it (a node that lost its lease for a moment publishes none, and another node may expire meanwhile).
    /// </summary>
    public async Task ExpireBindingsAsync(CancellationToken ct)
    {
        if (server.Config.Cluster is not { } cluster) return;
        foreach (var tenant in server.TenantRuntimes)
        {
            if (tenant.Cluster is not { } addresses) continue;
            try
            {
                await addresses.TouchAsync([.. server.Sessions.All.Where(s => s.Tenant == tenant && s.Connection is not null && s.ClusterBinding is not null)
                    .Select(s => s.ClusterBinding!)], ct).ConfigureAwait(false);
                var released = await addresses.ExpireAsync(cluster.BindingTtl, ct).ConfigureAwait(false);
                if (released.Count > 0)
                    log.LogInformation("cluster: tenant {Tenant}: released the addresses of {Count} user(s) unused for {Days} days", tenant.Name, released.Count, cluster.BindingTtl.TotalDays);
            }
            catch (Exception e) when (e is KeyValueStoreException or InvalidOperationException)
            {
                // InvalidOperationException: the tenant's pool in the store is not the one configured here. The
                // other tenants are looked at all the same.
                log.LogWarning("cluster: tenant {Tenant}: could not look for unused address bindings: {Error}", tenant.Name, e.Message);
            }
        }
    }

    /// <summary>
    /// Deletes the cluster's keys of users enabled again longer ago than the cookie lifetime: no cookie from before
    /// those enablings is valid any more (<see cref="SharedState.ForgetEnablingsBeforeAsync"/>).
    /// </summary>
    public async Task ForgetOldEnablingsAsync(CancellationToken ct)
    {
        try
        {
            int forgotten = await shared.ForgetEnablingsBeforeAsync(server.Config.Cookie.NoneValidFromBefore(DateTimeOffset.UtcNow), ct).ConfigureAwait(false);
            if (forgotten > 0) log.LogInformation("cluster: forgot {Count} user(s) enabled again more than a cookie lifetime ago", forgotten);
        }
        catch (KeyValueStoreException e)
        {
            log.LogWarning("cluster: could not forget users enabled again long ago: {Error}", e.Message);
        }
    }

    private ClusterSession Summary(VpnSession s) =>
        new(s.Id.ToString("N"), shared.Node, s.Tenant.Name, s.User, s.Address?.ToString(), s.Source?.ToString(), s.Since, s.Connection is not null);

    /// <summary>Every node's published sessions; entries that do not parse are left out.</summary>
    /// <param name="fresh">A list read at most this long ago will do (<see cref="SharedState.RecentSessionsAsync"/>); null: read now.</param>
    public static async Task<IReadOnlyList<ClusterSession>> ListAsync(SharedState shared, CancellationToken ct, TimeSpan? fresh = null)
    {
        var list = new List<ClusterSession>();
        var sessions = fresh is { } age ? shared.RecentSessionsAsync(age, ct) : shared.SessionsAsync(ct);
        foreach (var (_, summary) in await sessions.ConfigureAwait(false))
        {
            try
            {
                if (JsonSerializer.Deserialize<ClusterSession>(summary.Span, Json) is { } s) list.Add(s);
            }
            catch (JsonException)
            {
            }
        }
        return list;
    }
}
