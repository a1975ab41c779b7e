using System.Net;
using Isotun.Protocol.Ip;
using Isotun.Transport;

namespace Isotun.Server;

/// <summary>
/// A session as its tenant sees it: whose it is, the addresses it leases, the connections that packets to those
/// addresses go to, and the site it carries. The tenant's tables hold sessions as this, so the tenant knows nothing
/// of logins, cookies or limits; <see cref="VpnSession"/> adds those, and says where the session's routes go
/// (<see cref="Routed"/>, <see cref="Unrouted"/>).
/// </summary>
public abstract class TenantSession(Guid id, string user)
{
    public Guid Id { get; } = id;
    public string ShortId { get; } = id.ToString("N")[..8];
    public string User { get; } = user;

    /// <summary>When the user logged in.</summary>
    public DateTimeOffset Since { get; init; } = DateTimeOffset.UtcNow;

    public IPAddress? Address { get; private set; }
    public IPAddress? Address6 { get; private set; }
    public IpKey AddressKey { get; private set; }
    public IpKey AddressKey6 { get; private set; }

    public bool HasAddresses => Address is not null;

    public void Assign(IPAddress address, IPAddress? address6)
    {
        Address = address;
        AddressKey = IpKey.FromAddress(address);
        Address6 = address6;
        if (address6 is not null) AddressKey6 = IpKey.FromAddress(address6);
    }

    /// <summary>
    /// Is <paramref name="source"/> one of this session's own addresses? Not once the session has ended: its addresses
    /// go back to the pool while a kicked connection may still read for a moment (its DISCONNECT going out), and
    /// must not send from what may be someone else's address by then.
    /// </summary>
    public bool Owns(IpKey source) => !Ended && (source == AddressKey || (Address6 is not null && source == AddressKey6));

    private volatile bool _ended;

    /// <summary>Set once the session has ended (before its addresses are released); it routes and sends nothing after.</summary>
    public bool Ended => _ended;

    internal void MarkEnded() => _ended = true;

    /// <summary>On a cluster node: the name the session's IPv4 address is bound to in the cluster (the user, or user~N).</summary>
    public string? ClusterBinding { get; set; }

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

    private readonly Lock _gate = new();
    // Index = queue; [0] is the primary, the connection that negotiated the group. Changed under _gate only.
    private Downlink?[] _queues = [null];
    // The attached connections, primary first: what the TUN readers pick from, swapped whole.
    private volatile Downlink[] _live = [];

    /// <summary>The primary tunnel connection, if one is attached.</summary>
    public Downlink? Connection => _live is [var primary, ..] ? primary : null;

    /// <summary>Connections attached now (primary and queues).</summary>
    public int LiveQueues => _live.Length;

    /// <summary>The attached connections, primary first (a snapshot).</summary>
    public IReadOnlyList<Downlink> Live => _live;

    /// <summary>Queues of the current group, as negotiated by its primary (1 without the extension).</summary>
    public int QueueCount => _queues.Length;

    // How the group's flows are spread over its connections; made with a group of several queues.
    private volatile FlowSteering? _steering;

    /// <summary>
    /// The connection for a packet towards this client: with several queues, one per flow, so the packets of one flow
    /// stay in order; where its hash says, unless that one is busy and another is not (<see cref="FlowSteering"/>).
    /// Allocation-free; null when nothing is attached.
    /// </summary>
    public Downlink? Pick(ReadOnlySpan<byte> packet, in IpPacketInfo info)
    {
        var live = _live;
        if (live.Length < 2) return live.Length == 0 ? null : live[0];
        uint hash = FlowHash.Of(packet, info);
        return live[_steering is { } steering
            ? steering.Pick(hash, packet.Length, live, Environment.TickCount64)
            : FlowHash.Pick(hash, live.Length)];
    }

    /// <summary>The session's addresses now lead to it (a primary attached). Called under the group's lock.</summary>
    protected abstract void Routed();

    /// <summary>The session's addresses no longer lead to it (its primary ended). Called under the group's lock.</summary>
    protected abstract void Unrouted();

    /// <summary>
    /// A new primary connection: it starts a new group of <paramref name="queues"/> queues, takes the session's
    /// routes, and the connections of the old group are aborted as replaced (the client reconnects all of its queues).
    /// </summary>
    public void AttachPrimary(Downlink primary, int queues)
    {
        Downlink[] old;
        lock (_gate)
        {
            old = _queues.OfType<Downlink>().ToArray();
            _queues = new Downlink?[queues];
            _queues[0] = primary;
            _steering = queues > 1 ? new FlowSteering() : null;
            _live = [primary];
            Routed();
        }
        // Outside the lock: aborting runs the connections' cancellation callbacks.
        foreach (var connection in old) connection.Abort(TunnelEnd.Replaced);
    }

    /// <summary>
    /// Joins a further connection as queue <paramref name="index"/> of the current group; a connection already at
    /// that index is aborted as replaced. False when no primary is attached or the group has no such queue.
    /// </summary>
    public bool TryAttachQueue(int index, Downlink connection)
    {
        Downlink? replaced;
        lock (_gate)
        {
            if (_queues[0] is null || index < 1 || index >= _queues.Length) return false;
            replaced = _queues[index];
            _queues[index] = connection;
            _live = _queues.OfType<Downlink>().ToArray();
        }
        replaced?.Abort(TunnelEnd.Replaced);
        return true;
    }

    /// <summary>
    /// Takes a connection that ended out of the group. When it was the primary, the whole group goes: the
    /// session's routes are removed, the queues still attached are aborted (their primary ended), and the result
    /// is true. A connection already replaced changes nothing.
    /// </summary>
    public bool Detach(Downlink connection)
    {
        Downlink[] orphans;
        lock (_gate)
        {
            int i = Array.IndexOf(_queues, connection);
            if (i < 0) return false;
            if (i > 0)
            {
                _queues[i] = null;
                _live = _queues.OfType<Downlink>().ToArray();
                return false;
            }
            orphans = _queues.Skip(1).OfType<Downlink>().ToArray();
            _queues = [null];
            _live = [];
            // Under the lock, so a new primary attaching at the same time cannot lose its routes.
            Unrouted();
        }
        foreach (var queue in orphans) queue.Abort(TunnelEnd.PrimaryEnded);
        return true;
    }
}
