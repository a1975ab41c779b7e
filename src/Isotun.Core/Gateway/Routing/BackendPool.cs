using System.Net;
using System.Net.Sockets;

namespace Isotun.Gateway.Routing;

/// <summary>
/// The backends of one route and their health. With several (the nodes of a cluster), each client goes to the healthy
/// backend its address ranks first (rendezvous hashing): a client's connections (its login, its tunnel and the tunnel's
/// further queues, which must meet on one node) all go to the same node, and when a node goes, only its own clients
/// move, spread over the others. A connect that fails marks the backend down at once, and the client's next backend is
/// tried; a probe (a TCP connect) every <see cref="ProbeEvery"/> marks backends down or up again, so a node that stops
/// listening (one being stopped, which drains) gets no new clients.
/// </summary>
public sealed class BackendPool(IReadOnlyList<IPEndPoint> backends)
{
    public static readonly TimeSpan ProbeEvery = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    // 0 up, 1 down; written by connects and probes, read per new connection.
    private readonly int[] _down = new int[backends.Count];

    public IReadOnlyList<IPEndPoint> Backends { get; } = backends;

    /// <summary>
    /// The backends read PROXY v2: a probe sends the LOCAL command a health check sends (a server counts it as one,
    /// not as a connection closed before its header).
    /// </summary>
    public bool ProbeSaysLocal { get; init; }

    private static readonly byte[] LocalHeader = Isotun.Protocol.Proxy.ProxyV2Writer.ToArray(Isotun.Protocol.Proxy.ProxyHeader.Local());

    public bool IsUp(int index) => Volatile.Read(ref _down[index]) == 0;

    public void MarkDown(int index) => Volatile.Write(ref _down[index], 1);

    public void MarkUp(int index) => Volatile.Write(ref _down[index], 0);

    /// <summary>Takes the health <paramref name="old"/> knew of the backends both have (a reload); the others start up.</summary>
    public void KeepHealthOf(BackendPool old)
    {
        var known = old.Backends.ToList();
        for (int i = 0; i < Backends.Count; i++)
        {
            int j = known.IndexOf(Backends[i]);
            if (j >= 0 && !old.IsUp(j)) MarkDown(i);
        }
    }

    /// <summary>The order to try the backends in for <paramref name="client"/>: the healthy ones by rank, then the others (a last resort).</summary>
    public int[] Order(IPAddress client)
    {
        if (Backends.Count == 1) return [0];
        var ranked = Enumerable.Range(0, Backends.Count).OrderByDescending(i => Rank(client, Backends[i])).ToArray();
        return [.. ranked.Where(IsUp), .. ranked.Where(i => !IsUp(i))];
    }

    /// <summary>Probes every backend once (a TCP connect within <see cref="ProbeTimeout"/>); returns the ones whose state changed.</summary>
    public async Task<IReadOnlyList<(IPEndPoint Backend, bool Up)>> ProbeAsync(CancellationToken ct)
    {
        var results = await Task.WhenAll(Backends.Select(async (b, i) => (i, up: await ReachableAsync(b, ProbeSaysLocal ? LocalHeader : null, ct).ConfigureAwait(false)))).ConfigureAwait(false);
        var changed = new List<(IPEndPoint, bool)>();
        foreach (var (i, up) in results)
        {
            if (up == IsUp(i)) continue;
            if (up) MarkUp(i);
            else MarkDown(i);
            changed.Add((Backends[i], up));
        }
        return changed;
    }

    private static async Task<bool> ReachableAsync(IPEndPoint backend, byte[]? hello, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ProbeTimeout);
        Socket? socket = null;
        try
        {
            // Made inside: a socket that cannot be made (no IPv6 here, no descriptors left) is a failed probe, not the end of probing.
            socket = new Socket(backend.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(backend, timeout.Token).ConfigureAwait(false);
            if (hello is not null) await socket.SendAsync(hello, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
        finally
        {
            socket?.Dispose();
        }
    }

    /// <summary>
    /// FNV-1a over the client's address and the backend's, then a 64-bit finalizer (without it, backends that differ
    /// only in their last byte or port rank alike for most clients): not a security boundary (a client may pick its own
    /// node by its address, and gains nothing), only a stable spread. Hand-written: a few lines, no allocation.
    /// </summary>
    private static ulong Rank(IPAddress client, IPEndPoint backend)
    {
        ulong h = Fnv(Fnv(14695981039346656037UL, client), backend.Address);
        h = (h ^ (byte)backend.Port) * 1099511628211UL;
        h = (h ^ (byte)(backend.Port >> 8)) * 1099511628211UL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdUL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53UL;
        return h ^ (h >> 33);
    }

    private static ulong Fnv(ulong h, IPAddress address)
    {
        Span<byte> buf = stackalloc byte[16];
        address.TryWriteBytes(buf, out int n);
        foreach (byte b in buf[..n]) h = (h ^ b) * 1099511628211UL;
        return h;
    }
}
