using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
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
    private readonly EtcdTls? _tls;
    private readonly EtcdCredentials? _credentials;

    // Why the last TLS handshake refused etcd's certificate, for the message of the call that failed on it: gRPC
    // reports only that the connection could not be made.
    private volatile string? _tlsRejection;

    /// <summary>
    /// Connects to <paramref name="endpoints"/>, e.g. <c>http://127.0.0.1:2379</c> (comma-separated for several); with
    /// <paramref name="tls"/> (which the store then owns), to <c>https://</c> endpoints only; with
    /// <paramref name="credentials"/>, as that etcd user (the client gets a token with them and renews it).
    /// </summary>
    public EtcdKeyValueStore(string endpoints, EtcdTls? tls = null, EtcdCredentials? credentials = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoints);
        // The client picks TLS for all endpoints or none, whatever each URL's scheme says: refuse a URL that says otherwise.
        var scheme = tls is null ? "http://" : "https://";
        if (endpoints.Split(',').FirstOrDefault(e => !e.Trim().StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) is { } other)
            throw new ArgumentException($"{other.Trim()}: {(tls is null ? "an http:// endpoint is needed without TLS settings" : "an https:// endpoint is needed with TLS settings")}", nameof(endpoints));
        _endpoints = endpoints;
        _tls = tls;
        // gRPC's default reconnect back-off grows to two minutes: a node would then wait that long to notice etcd is back.
        Action<GrpcChannelOptions> backoff = o =>
        {
            o.InitialReconnectBackoff = TimeSpan.FromMilliseconds(200);
            o.MaxReconnectBackoff = TimeSpan.FromSeconds(2);
        };
        _client = tls is null
            ? new EtcdClient(endpoints, configureChannelOptions: backoff)
            : new EtcdClient(endpoints, o => ConfigureTls(o, tls), configureChannelOptions: backoff);
        // A token lives 5 minutes in etcd's default (simple) token mode: the client fetches a new one every minute.
        _credentials = credentials;
        if (credentials is not null) _client.SetCredentials(credentials.User, credentials.Password, TimeSpan.FromMinutes(1));
    }

    /// <summary>
    /// Trusts only the given CAs (the chain is built against them, with the system's roots left out), keeps the host
    /// name check, and presents the client certificate whatever CAs etcd says it accepts.
    /// </summary>
    private void ConfigureTls(SslClientAuthenticationOptions o, EtcdTls tls)
    {
        o.CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck, DisableCertificateDownloads = true };
        o.CertificateChainPolicy.CustomTrustStore.AddRange(tls.TrustedCas);
        if (tls.ClientCertificate is { } client) o.LocalCertificateSelectionCallback = (_, _, _, _, _) => client;
        o.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            _tlsRejection = errors == SslPolicyErrors.None ? null : Rejection((sender as SslStream)?.TargetHostName, certificate, chain, errors);
            return errors == SslPolicyErrors.None;
        };
    }

    private static string Rejection(string? host, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var who = string.IsNullOrEmpty(host) ? "etcd" : $"etcd at {host}";
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable)) return $"{who} sent no certificate";
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            var why = chain is null ? "" : string.Join(", ", chain.ChainStatus.Select(s => s.Status).Distinct());
            return $"{who}: its certificate ({certificate.Subject}) is not trusted: it does not chain to the given CA{(why.Length > 0 ? $" ({why})" : "")}";
        }
        return $"{who}: its certificate ({certificate.Subject}) is not valid for the name {host}";
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
        var end = ByteString.CopyFrom(KeyValueLimits.PrefixEnd(start));
        var entries = new List<KeyValueEntry>();
        var next = ByteString.CopyFrom(start);
        long revision = 0;
        // In pages, all at the revision of the first: a prefix with many keys (a long list of revoked certificates)
        // would not fit in one answer (gRPC takes 4 MiB at most), and the pages together are one consistent view.
        while (true)
        {
            var request = new RangeRequest
            {
                Key = next,
                RangeEnd = end,
                SortTarget = RangeRequest.Types.SortTarget.Key,
                SortOrder = RangeRequest.Types.SortOrder.Ascend,
                Limit = RangePage,
                Revision = revision,
            };
            var response = await Call(() => _client.GetAsync(request, cancellationToken: ct), $"range {prefix}").ConfigureAwait(false);
            if (revision == 0) revision = response.Header.Revision;
            entries.AddRange(response.Kvs.Select(Entry));
            if (!response.More || response.Kvs.Count == 0) return new RangeResult(entries, revision);
            next = ByteString.CopyFrom([.. response.Kvs[^1].Key.Span, 0]); // the next key after the last one read
        }
    }

    /// <summary>Keys read per answer of a range (each key and value at most 65 KiB: well under gRPC's 4 MiB).</summary>
    internal const int RangePage = 50;

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

    /// <summary>How often a watch with progress asks etcd for a progress notification.</summary>
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(10);

    public async IAsyncEnumerable<KeyValueEvent> WatchAsync(string prefix, long fromRevision, [EnumeratorCancellation] CancellationToken ct = default,
        bool progress = false)
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
        // One raw Watch stream per enumeration, ended with it. dotnet-etcd 10.0.0's watch manager shares streams
        // across watches and, after etcd restarts, can leave a watch that never delivers again or whose every new
        // watch fails at once ("No grpc-status found on response", seen over TLS); a stream of our own has no such
        // state, and a broken one fails this enumeration, whose caller opens another.
        string what = $"watch {prefix} from revision {fromRevision}";
        using var call = _client.GetConnection().WatchClient.Watch(cancellationToken: ct);
        await Call(async () => { await call.RequestStream.WriteAsync(request, ct).ConfigureAwait(false); return true; }, what).ConfigureAwait(false);
        // etcd answers a progress request, once the watch has caught up, with a response without events whose header
        // holds the revision up to which everything was sent. A request that fails ends only the asking: a broken stream
        // fails the reading below as well.
        using var asking = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var ask = progress ? AskProgressAsync(call.RequestStream, asking.Token) : Task.CompletedTask;
        try
        {
            while (await Call(() => call.ResponseStream.MoveNext(ct), what).ConfigureAwait(false))
            {
                var response = call.ResponseStream.Current;
                if (response.CompactRevision > 0)
                    throw new KeyValueStoreException(KeyValueStoreError.Compacted,
                        $"{what}: etcd compacted its history up to revision {response.CompactRevision}");
                if (response.Canceled)
                    throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"watch {prefix}: etcd ended it ({response.CancelReason})");
                if (progress && response.Events.Count == 0 && !response.Created && response.Header is { } header)
                    yield return new KeyValueEvent(KeyValueEventKind.Progress, "", ReadOnlyMemory<byte>.Empty, header.Revision);
                foreach (var e in response.Events)
                    yield return e.Type == Event.Types.EventType.Put
                        ? new KeyValueEvent(KeyValueEventKind.Put, e.Kv.Key.ToStringUtf8(), e.Kv.Value.Memory, e.Kv.ModRevision)
                        : new KeyValueEvent(KeyValueEventKind.Delete, e.Kv.Key.ToStringUtf8(), ReadOnlyMemory<byte>.Empty, e.Kv.ModRevision);
            }
        }
        finally
        {
            asking.Cancel();
            try
            {
                await ask.ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException or IOException)
            {
            }
        }
        throw new KeyValueStoreException(KeyValueStoreError.Unavailable, $"{what}: etcd closed the stream");
    }

    private static async Task AskProgressAsync(IClientStreamWriter<WatchRequest> requests, CancellationToken ct)
    {
        var ask = new WatchRequest { ProgressRequest = new WatchProgressRequest() };
        while (true)
        {
            await Task.Delay(ProgressEvery, ct).ConfigureAwait(false);
            await requests.WriteAsync(ask, ct).ConfigureAwait(false);
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
            throw new KeyValueStoreException(error, $"etcd {_endpoints}: {what}: {Reason(e)}", e);
        }
    }

    /// <summary>
    /// What went wrong: gRPC's status, or under TLS what failed beneath it, since gRPC reports a refused certificate
    /// only as a connection that could not be made.
    /// </summary>
    private string Reason(RpcException e)
    {
        var causes = new List<Exception>();
        for (var x = _tls is null ? null : e.Status.DebugException; x is not null; x = x.InnerException) causes.Add(x);
        // Our side refused etcd's certificate (the callback said why), or the handshake failed before that.
        if (causes.OfType<AuthenticationException>().FirstOrDefault() is { } refused)
            return $"TLS handshake failed: {_tlsRejection ?? (refused.InnerException ?? refused).Message}";
        // etcd judges the client's certificate after our side of a TLS 1.3 handshake has completed: a refusal comes as
        // an alert (OpenSSL's message ends with its name) or, when it races our first write, as a closed connection.
        var hint = _tls is { ClientCertificate: null } ? "; no client certificate was given, and etcd with --client-cert-auth asks for one" : "";
        if (causes.OfType<CryptographicException>().FirstOrDefault() is { } alert)
            return $"etcd refused the TLS connection ({alert.Message[(alert.Message.LastIndexOf("::", StringComparison.Ordinal) + 1)..].Trim(':', ' ')}){hint}";
        if (causes.FirstOrDefault(c => c is IOException or HttpRequestException { HttpRequestError: HttpRequestError.InvalidResponse or HttpRequestError.ResponseEnded }) is { } closed)
            return $"etcd closed the TLS connection ({closed.Message}){hint}";
        // Authentication: etcd says little about it, so say what to change.
        if (e.Status.Detail.Contains("user name is empty", StringComparison.Ordinal))
            return $"{e.Status.Detail} ({e.StatusCode}): etcd has authentication on, and this node logs in as no user (cluster.auth)";
        if (e.Status.Detail.Contains("authentication failed", StringComparison.Ordinal))
            return $"{e.Status.Detail} ({e.StatusCode}): etcd refused {_credentials?.ToString() ?? "the login"}";
        if (e.StatusCode == StatusCode.PermissionDenied)
            return $"{e.Status.Detail} ({e.StatusCode}): {_credentials?.ToString() ?? "this client"} lacks a role that may read and write the cluster's prefix";
        // A refused client certificate also comes, now and then, as a bare failure to connect, with no cause gRPC keeps.
        return $"{e.Status.Detail} ({e.StatusCode}){(e.StatusCode == StatusCode.Unavailable ? hint : "")}";
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        _tls?.Dispose();
        return ValueTask.CompletedTask;
    }
}
