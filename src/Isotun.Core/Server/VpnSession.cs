using System.Net;
using Isotun.Protocol.Ip;
using Isotun.Transport;

namespace Isotun.Server;

/// <summary>
/// A logged-in user's session, named by the cookie. It outlives TCP connections: a client that lost its
/// connection comes back with the cookie and gets the same addresses. It ends on a user DISCONNECT or
/// when the cookie expires.
/// </summary>
public sealed class VpnSession(Guid id, TenantRuntime tenant, string user, DateTimeOffset expiresAt)
{
    public Guid Id { get; } = id;
    public string ShortId { get; } = id.ToString("N")[..8];
    public TenantRuntime Tenant { get; } = tenant;
    public string User { get; } = user;
    public DateTimeOffset ExpiresAt { get; } = expiresAt;

    public IPAddress? Address { get; private set; }
    public IPAddress? Address6 { get; private set; }
    public IpKey AddressKey { get; private set; }
    public IpKey AddressKey6 { get; private set; }

    /// <summary>The fingerprint of the credential the login was checked against (<see cref="Security.CredentialStamp"/>), or 0.</summary>
    public ulong Credential { get; init; }

    /// <summary>When the user logged in.</summary>
    public DateTimeOffset Since { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>What the primary connection's CONNECT said about the client: its address, its software, the extensions agreed.</summary>
    public IPEndPoint? Source { get; private set; }
    public string? ClientVersion { get; private set; }
    public string Extensions { get; private set; } = "none";

    public void Connected(IPEndPoint? source, string? clientVersion, string extensions)
    {
        Source = source;
        ClientVersion = clientVersion;
        Extensions = extensions;
    }

    // Totals of connections that have ended; the live ones are added when read.
    private long _rxBytes, _rxFrames, _txBytes, _txFrames;

    /// <summary>Payload bytes and frames each way over the session's life, all connections and queues together.</summary>
    public (long RxBytes, long RxFrames, long TxBytes, long TxFrames) Traffic()
    {
        long rb = Interlocked.Read(ref _rxBytes), rf = Interlocked.Read(ref _rxFrames), tb = Interlocked.Read(ref _txBytes), tf = Interlocked.Read(ref _txFrames);
        foreach (var c in _live)
        {
            rb += Volatile.Read(ref c.RxBytes);
            rf += Volatile.Read(ref c.RxFrames);
            tb += Volatile.Read(ref c.Writer.BytesWritten);
            tf += Volatile.Read(ref c.Writer.FramesWritten);
        }
        return (rb, rf, tb, tf);
    }

    /// <summary>Keeps an ending connection's totals (called once it has stopped reading and writing).</summary>
    public void AddTotals(TunnelConnection c)
    {
        Interlocked.Add(ref _rxBytes, Volatile.Read(ref c.RxBytes));
        Interlocked.Add(ref _rxFrames, Volatile.Read(ref c.RxFrames));
        Interlocked.Add(ref _txBytes, Volatile.Read(ref c.Writer.BytesWritten));
        Interlocked.Add(ref _txFrames, Volatile.Read(ref c.Writer.FramesWritten));
    }

    /// <summary>The user's rate limiters (shared by all of the user's sessions), or null when unlimited.</summary>
    public (TokenBucket Rx, TokenBucket Tx)? Limits { get; init; }

    /// <summary>What the session's connections may hold in queued frames, together.</summary>
    public MemoryBudget Budget { get; init; } = new(MemoryBudget.DefaultBytes);

    private readonly Lock _gate = new();
    // Index = queue; [0] is the primary, the connection that negotiated the group. Changed under _gate only.
    private TunnelConnection?[] _queues = [null];
    // The attached connections, primary first: what the TUN readers pick from, swapped whole.
    private volatile TunnelConnection[] _live = [];

    /// <summary>The primary tunnel connection, if one is attached.</summary>
    public TunnelConnection? Connection => _live is [var primary, ..] ? primary : null;

    /// <summary>Connections attached now (primary and queues).</summary>
    public int LiveQueues => _live.Length;

    /// <summary>The attached connections, primary first (a snapshot).</summary>
    public IReadOnlyList<TunnelConnection> Live => _live;

    /// <summary>Queues of the current group, as negotiated by its primary (1 without the extension).</summary>
    public int QueueCount => _queues.Length;

    /// <summary>
    /// The connection for a packet towards this client: with several queues, the one its flow hashes to, so
    /// the packets of one flow stay in order. Allocation-free; null when nothing is attached.
    /// </summary>
    public TunnelConnection? Pick(ReadOnlySpan<byte> packet, in IpPacketInfo info)
    {
        var live = _live;
        return live.Length switch
        {
            0 => null,
            1 => live[0],
            _ => live[FlowHash.Pick(FlowHash.Of(packet, info), live.Length)],
        };
    }

    /// <summary>
    /// A new primary connection: it starts a new group of <paramref name="queues"/> queues, and the connections of
    /// the old group are aborted as replaced (the client reconnects all of its queues).
    /// </summary>
    public void AttachPrimary(TunnelConnection primary, int queues)
    {
        TunnelConnection[] old;
        lock (_gate)
        {
            old = _queues.OfType<TunnelConnection>().ToArray();
            _queues = new TunnelConnection?[queues];
            _queues[0] = primary;
            _live = [primary];
            Tenant.Attach(this);
        }
        // Outside the lock: aborting runs the connections' cancellation callbacks.
        foreach (var connection in old) connection.Abort(TunnelEnd.Replaced);
    }

    /// <summary>
    /// Joins a further connection as queue <paramref name="index"/> of the current group; a connection already at
    /// that index is aborted as replaced. False when no primary is attached or the group has no such queue.
    /// </summary>
    public bool TryAttachQueue(int index, TunnelConnection connection)
    {
        TunnelConnection? replaced;
        lock (_gate)
        {
            if (_queues[0] is null || index < 1 || index >= _queues.Length) return false;
            replaced = _queues[index];
            _queues[index] = connection;
            _live = _queues.OfType<TunnelConnection>().ToArray();
        }
        replaced?.Abort(TunnelEnd.Replaced);
        return true;
    }

    /// <summary>
    /// Takes a connection that ended out of the group. When it was the primary, the whole group goes: the
    /// session's routes are removed, the queues still attached are aborted (their primary ended), and the result
    /// is true. A connection already replaced changes nothing.
    /// </summary>
    public bool Detach(TunnelConnection connection)
    {
        TunnelConnection[] orphans;
        lock (_gate)
        {
            int i = Array.IndexOf(_queues, connection);
            if (i < 0) return false;
            if (i > 0)
            {
                _queues[i] = null;
                _live = _queues.OfType<TunnelConnection>().ToArray();
                return false;
            }
            orphans = _queues.Skip(1).OfType<TunnelConnection>().ToArray();
            _queues = [null];
            _live = [];
            // Under the lock, so a new primary attaching at the same time cannot lose its routes.
            Tenant.Detach(this);
        }
        foreach (var queue in orphans) queue.Abort(TunnelEnd.PrimaryEnded);
        return true;
    }

    private Site? _site;

    /// <summary>
    /// The site this session carries now (its subnets are routed to it and accepted from it), or null. Set by the
    /// tenant: a user's newest attached session owns the user's site.
    /// </summary>
    public Site? Site
    {
        get => Volatile.Read(ref _site);
        internal set => Volatile.Write(ref _site, value);
    }

    /// <summary>On a cluster node: the name the session's IPv4 address is bound to in the cluster (the user, or user~N).</summary>
    public string? ClusterBinding { get; set; }

    public bool HasAddresses => Address is not null;

    public void Assign(IPAddress address, IPAddress? address6)
    {
        Address = address;
        AddressKey = IpKey.FromAddress(address);
        Address6 = address6;
        if (address6 is not null) AddressKey6 = IpKey.FromAddress(address6);
    }

    /// <summary>Is <paramref name="source"/> one of this session's own addresses?</summary>
    public bool Owns(IpKey source) => source == AddressKey || (Address6 is not null && source == AddressKey6);
}
