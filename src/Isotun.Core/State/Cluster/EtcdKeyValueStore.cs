using System.Runtime.CompilerServices;
using System.Threading.Channels;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Mvccpb;

namespace Isotun.State.Cluster;

/// <summary>
/// The cluster <see cref="IKeyValueStore"/>: etcd v3 (3.4 or later) through the dotnet-etcd client, one gRPC channel
/// per instance. Every call maps to one etcd request (a commit is one <c>Txn</c>), so revisions, leases and watches
/// are etcd's own; this class only checks inputs against <see cref="KeyValueLimits"/> and turns gRPC failures into
/// <see cref="KeyValueStoreException"/>s. The client retries a call a few times while the server is unreachable.
/// A watch's responses queue in memory until read.
/// </summary>
public sealed class EtcdKeyValueStore : IKeyValueStore
{
    private readonly EtcdClient _client;
    private readonly string _endpoints;

    /// <summary>Connects to <paramref name="endpoints"/>, e.g. <c>http://127.0.0.1:2379</c> (comma-separated for several).</summary>
    public EtcdKeyValueStore(string endpoints)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoints);
        _endpoints = endpoints;
        // gRPC's default reconnect back-off grows to two minutes: a node would then wait that long to notice etcd is back.
        _client = new EtcdClient(endpoints, configureChannelOptions: o =>
        {
            o.InitialReconnectBackoff = TimeSpan.FromMilliseconds(200);
            o.MaxReconnectBackoff = TimeSpan.FromSeconds(2);
        });
    }

    public async Task<KeyValueEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        var request = new RangeRequest { Key = ByteString.CopyFrom(KeyValueLimits.KeyBytes(key)) };
        var response = await Call(() => _client.GetAsync(request, cancellationToken: ct), $"get {key}").ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : Entry(response.Kvs[0]);
    }

    public async Task<RangeResult> RangeAsync(string prefix, CancellationToken ct = default)
    {
        var start = KeyValueLimits.KeyBytes(prefix, "prefix");
        var request = new RangeRequest
        {
            Key = ByteString.CopyFrom(start),
            RangeEnd = ByteString.CopyFrom(KeyValueLimits.PrefixEnd(start)),
            SortTarget = RangeRequest.Types.SortTarget.Key,
            SortOrder = RangeRequest.Types.SortOrder.Ascend,
        };
        var response = await Call(() => _client.GetAsync(request, cancellationToken: ct), $"range {prefix}").ConfigureAwait(false);
        return new RangeResult(response.Kvs.Select(Entry).ToList(), response.Header.Revision);
    }

    public async Task<CommitResult> CommitAsync(IReadOnlyList<KeyCondition> conditions, IReadOnlyList<KeyWrite> writes, CancellationToken ct = default)
    {
        KeyValueLimits.CheckCommit(conditions, writes);
        var txn = new TxnRequest();
        foreach (var c in conditions)
            txn.Compare.Add(new Compare
            {
                Key = ByteString.CopyFrom(KeyValueLimits.KeyBytes(c.Key)),
                Target = Compare.Types.CompareTarget.Mod,
                Result = Compare.Types.CompareResult.Equal,
                ModRevision = c.ModRevision, // an absent key compares as revision 0
            });
        foreach (var w in writes)
        {
            var key = ByteString.CopyFrom(KeyValueLimits.KeyBytes(w.Key));
            txn.Success.Add(w.IsDelete
                ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } }
                : new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFrom(w.Value.Span), Lease = w.Lease } });
        }
        var response = await Call(() => _client.TransactionAsync(txn, cancellationToken: ct), Describe(writes)).ConfigureAwait(false);
        return new CommitResult(response.Succeeded, response.Header.Revision);
    }

    private static string Describe(IReadOnlyList<KeyWrite> writes) =>
        writes.Count == 0 ? "commit" : $"commit of {writes[0].Key}" + (writes.Count > 1 ? $" and {writes.Count - 1} more" : "");

    public async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct = default)
    {
        var request = new LeaseGrantRequest { TTL = KeyValueLimits.TtlSeconds(ttl) };
        var response = await Call(() => _client.LeaseGrantAsync(request, cancellationToken: ct), "lease grant").ConfigureAwait(false);
        if (!string.IsNullOrEmpty(response.Error))
            throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"etcd {_endpoints}: lease grant: {response.Error}");
        return response.ID;
    }

    public async Task RevokeLeaseAsync(long lease, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lease);
        try
        {
            await Call(() => _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease }, cancellationToken: ct), $"revoke lease {lease}").ConfigureAwait(false);
        }
        catch (KeyValueStoreException e) when (e.Error == KeyValueStoreError.LeaseNotFound)
        {
            // Already ended: what the caller wanted.
        }
    }

    public ILeaseKeepAlive KeepAlive(long lease)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lease);
        // The library's loop renews every third of the TTL and returns when etcd answers that the lease has ended; a
        // broken stream (etcd restarting, a network blip) throws, and the keeper opens a new one. gRPC reports a broken
        // stream in more than one way (a status, an I/O error, "the call is complete"); only a disposed client is final.
        return new LeaseKeeper(lease, async ct =>
        {
            await _client.LeaseKeepAlive(lease, ct).ConfigureAwait(false);
            return null;
        }, e => e is RpcException or IOException or HttpRequestException or InvalidOperationException and not ObjectDisposedException, TimeProvider.System);
    }

    public async IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var start = KeyValueLimits.KeyBytes(prefix, "prefix");
        ArgumentOutOfRangeException.ThrowIfNegative(fromRevision);
        var request = new WatchRequest
        {
            CreateRequest = new WatchCreateRequest
            {
                Key = ByteString.CopyFrom(start),
                RangeEnd = ByteString.CopyFrom(KeyValueLimits.PrefixEnd(start)),
                StartRevision = fromRevision,
            },
        };
        var responses = Channel.CreateUnbounded<WatchResponse>(new UnboundedChannelOptions { SingleReader = true });
        Action<WatchResponse> onResponse = r => responses.Writer.TryWrite(r);
        long id = await Call(() => _client.WatchAsync(request, onResponse, cancellationToken: ct), $"watch {prefix} from revision {fromRevision}").ConfigureAwait(false);
        try
        {
            await foreach (var response in responses.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (response.CompactRevision > 0)
                    throw new KeyValueStoreException(KeyValueStoreError.Compacted,
                        $"watch {prefix} from revision {fromRevision}: etcd compacted its history up to revision {response.CompactRevision}");
                if (response.Canceled)
                    throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"watch {prefix}: etcd ended it ({response.CancelReason})");
                foreach (var e in response.Events)
                    yield return e.Type == Event.Types.EventType.Put
                        ? new KeyValueEvent(KeyValueEventKind.Put, e.Kv.Key.ToStringUtf8(), e.Kv.Value.Memory, e.Kv.ModRevision)
                        : new KeyValueEvent(KeyValueEventKind.Delete, e.Kv.Key.ToStringUtf8(), ReadOnlyMemory<byte>.Empty, e.Kv.ModRevision);
            }
        }
        finally
        {
            _client.CancelWatch(id);
        }
    }

    private static KeyValueEntry Entry(KeyValue kv) =>
        new(kv.Key.ToStringUtf8(), kv.Value.Memory, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);

    /// <summary>Runs one etcd call, with gRPC failures as <see cref="KeyValueStoreException"/>s that say what was asked.</summary>
    private async Task<T> Call<T>(Func<Task<T>> call, string what)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Cancelled or StatusCode.DeadlineExceeded && e.InnerException is OperationCanceledException oce)
        {
            throw oce;
        }
        catch (RpcException e)
        {
            var error = e.StatusCode == StatusCode.NotFound && e.Status.Detail.Contains("lease", StringComparison.Ordinal) ? KeyValueStoreError.LeaseNotFound
                : e.StatusCode == StatusCode.FailedPrecondition && e.Status.Detail.Contains("compacted", StringComparison.Ordinal) ? KeyValueStoreError.Compacted
                : KeyValueStoreError.Unavailable;
            throw new KeyValueStoreException(error, $"etcd {_endpoints}: {what}: {e.Status.Detail} ({e.StatusCode})", e);
        }
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
