using System.Diagnostics;
using Isotun.Metrics;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// One TLS connection carrying a session's CSTP frames. The reader loop (this class) moves client
/// packets into the tenant's TUN after checking them; its <see cref="Downlink"/>, which the session holds, sends the
/// frames the TUN reader queued. Bad input ends only this connection.
/// </summary>
public sealed class TunnelConnection
{
    private readonly VpnSession _session;
    private readonly ConnectionReader _reader;
    private readonly ILogger _log;
    private readonly CancellationTokenRegistration _onServerStop;
    // Made on the first packet: an idle connection holds no merge state.
    private TunWriter? _tunWriter;
    private long _lastRxTicks = Environment.TickCount64;

    /// <summary>Largest frame payload from a peer without GSO: what one TLS record (16 KiB) carries.</summary>
    public const int MaxPlainFramePayload = 16384 - CstpFrame.HeaderLength;

    /// <summary>Bad GSO headers a peer may send before its connection is closed.</summary>
    public const int MaxBadGso = 8;

    private int _badGso;

    /// <param name="crypto">Samples the TLS record work for the tenant's crypto meter; null when this process does no TLS for the connection (a gateway terminated it).</param>
    /// <summary>Holds back the lines a peer can make at will (a bad frame, again and again); null: every line.</summary>
    internal Logs.LogThrottle? Throttle { get; init; }

    public TunnelConnection(long id, VpnSession session, Stream stream, ConnectionReader reader, int mtu, IsotunExtension extensions, ILogger log, CancellationToken serverStopping, int queue = 0,
        CryptoSampler? crypto = null)
    {
        Id = id;
        _session = session;
        _reader = reader;
        _log = log;
        bool gso = extensions.HasFlag(IsotunExtension.Gso);
        // Super-packets use 64 KiB buffers: a shorter queue bounds the memory a session can pin.
        var writer = new FrameWriter(stream, gso ? 256 : FrameWriter.DefaultQueueDepth, inline: gso)
        {
            Limiter = session.Limits?.Tx,
            Batching = extensions.HasFlag(IsotunExtension.Batch),
            Budget = session.Budget,
            Crypto = crypto,
        };
        Link = new Downlink(queue, mtu, gso, gso && extensions.HasFlag(IsotunExtension.Uso), writer);
        reader.Crypto = crypto;
        reader.ReleaseWhenIdle = true; // a session may idle for hours: it holds no receive buffer meanwhile
        reader.Idle = ReleaseBurstBuffers; // nor what the reading loop keeps for a burst
        _onServerStop = serverStopping.UnsafeRegister(static l => ((Downlink)l!).Abort(TunnelEnd.Shutdown), Link);
    }

    /// <summary>
    /// What the session holds of this connection: the writer, the totals, the off switch. Never disposed: an abort may
    /// come from another connection at any time, even after the run ended (a new primary replacing this one, or this
    /// primary's end aborting a queue that is ending too).
    /// </summary>
    public Downlink Link { get; }

    /// <summary>The peer stopped reading: its send queue made no progress for 3×DPD (set before the dead-peer end).</summary>
    public bool StalledOut { get; private set; }

    public long Id { get; }
    private int Mtu => Link.Mtu;

    /// <summary>Which queue of its session this connection is: 0 for the primary (and every stock client).</summary>
    public int Queue => Link.Queue;

    /// <summary>
    /// Tells whether more bytes already wait in the socket. Then the merged packet is held across the next
    /// read, which will not block, so longer runs merge at no cost in latency. Null: flush after every read.
    /// </summary>
    public Func<bool>? MorePending { get; init; }

    // The peer negotiated GSO (it may send super-packets), USO as well (UDP ones too).
    private bool PeerGso => Link.PeerGso;
    private bool PeerUso => Link.PeerUso;
    private FrameWriter Writer => Link.Writer;

    private bool _ran;

    public async Task<TunnelEnd> RunAsync()
    {
        _ran = true;
        var ct = Link.Ending;
        var writerTask = Writer.RunAsync(ct);
        var dpd = new DeadPeerCheck(this);
        using var dpdTimer = new RecheckTimer(dpd.Run, dpd.First);
        TunnelEnd end = TunnelEnd.Error; // what anything else thrown ends it with
        try
        {
            end = await ReadLoopAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            end = Link.EndReason ?? TunnelEnd.Shutdown;
        }
        catch (IOException)
        {
            end = TunnelEnd.PeerClosed;
        }
        finally
        {
            // Whatever ended it: the writer drained, the connection closed, the server's stop no longer holding it.
            Link.Ended(end);
            Writer.Complete();
            if (end is TunnelEnd.BadFrame or TunnelEnd.Replaced or TunnelEnd.DeadPeer or TunnelEnd.Shutdown or TunnelEnd.Error or TunnelEnd.Revoked)
                Link.Abort(end);
            try { await writerTask.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false); } catch (Exception) { }
            Link.Abort(end);
            dpdTimer.Dispose();
            _onServerStop.Dispose();
        }
        return Link.EndReason!.Value;
    }

    /// <summary>
    /// Lets go of a connection that never ran (its CONNECT was refused after it was attached, or its reply could not be
    /// written): the frames queued for it meanwhile give their bytes back to the session's budget, and the server's stop
    /// no longer holds it. Does nothing after <see cref="RunAsync"/>, which does the same at its end.
    /// </summary>
    public void Discard()
    {
        if (_ran) return;
        Link.Abort(TunnelEnd.Error);
        Writer.Discard();
        _onServerStop.Dispose();
    }

    /// <summary>A burst that comes this long after the one before is served as interactive traffic (1 ms).</summary>
    private static readonly long QuietTicks = Stopwatch.Frequency / 1000;

    // Where a DATA frame's packet is laid out for the TUN (behind a virtio header on an offload TUN): rented by the
    // first DATA frame of a burst, at the MTU's size, and given back while the connection idles.
    private byte[]? _scratch;

    private byte[] Scratch => _scratch ??= System.Buffers.ArrayPool<byte>.Shared.Rent(VirtioNetHeader.Length + Mtu);

    private void ReleaseBurstBuffers()
    {
        if (_scratch is { } scratch) System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        _scratch = null;
        _tunWriter?.Trim();
    }

    private async Task<TunnelEnd> ReadLoopAsync(CancellationToken ct)
    {
        long writesServed = 0, lastBurst = 0;
        // Without GSO a frame is one packet of at most the MTU (9000), so it fits one TLS record; a peer that
        // announces more is broken or hostile, and its connection closes (bad-frame) before we buffer it.
        int maxPayload = PeerGso ? CstpFrame.MaxPayloadLength : MaxPlainFramePayload;
        try
        {
            while (true)
            {
                var frame = await _reader.ReadFrameAsync(maxPayload, ct).ConfigureAwait(false);
                // A burst after a quiet spell (a ping, a request): an answer the host gives at once is in the TUN queue
                // when our write returns. This thread sends it (ServeAfterWrite), and the queue's reader, waiting, is
                // kept from waking for it meanwhile. Under a stream of bursts this is skipped: the reader is awake
                // anyway, and reading after every burst would cost a read (mostly empty) per burst. Not for a
                // rate-limited session: its burst may wait for its allowance, and the reader must not be held that long.
                bool quiet = Stopwatch.GetTimestamp() - lastBurst >= QuietTicks;
                var held = quiet && _session.Limits is null ? _session.Tenant.HoldWakeups(Queue) : null;
                try
                {
                    // Handle every frame already buffered before reading again, so runs of segments can merge.
                    do
                    {
                        var end = await HandleFrameAsync(frame, ct).ConfigureAwait(false);
                        if (end is not null)
                        {
                            _tunWriter?.Flush();
                            return end.Value;
                        }
                    }
                    while (_reader.TryReadBufferedFrame(maxPayload, out frame));
                    if (MorePending?.Invoke() == true) continue;
                    if (_tunWriter is not { } tunWriter) continue;
                    if (!tunWriter.Flush()) _session.Tenant.Metrics.Drop(_session.Tenant.Name, DropReason.TunWriteFailed);
                    if (quiet && tunWriter.Writes != writesServed) _session.Tenant.ServeAfterWrite(Queue);
                    writesServed = tunWriter.Writes;
                }
                finally
                {
                    held?.ReleaseWakeups();
                    // Also when more is pending: a quiet spell is time without frames, not between flushes.
                    lastBurst = Stopwatch.GetTimestamp();
                }
            }
        }
        finally
        {
            ReleaseBurstBuffers();
        }
    }

    /// <summary>One frame from the client; null to go on, else how the connection ends.</summary>
    private async ValueTask<TunnelEnd?> HandleFrameAsync(FrameRead frame, CancellationToken ct)
    {
        var tenant = _session.Tenant;
        var metrics = _session.Tenant.Metrics;
        if (frame.Status == FrameReadStatus.EndOfStream) return TunnelEnd.PeerClosed;
        if (frame.Status == FrameReadStatus.BadFrame)
        {
            // A client with a good cookie can come back and send another bad frame at once: the lines are throttled
            // (the metric counts every one).
            long suppressed = 0;
            if (Throttle is null || Throttle.Allow("bad-frame", out suppressed))
                ServerLog.BadFrame(_log, tenant.Name, _session.ShortId, Id, suppressed > 0 ? $"{frame.Parse}; {suppressed} more not logged" : frame.Parse.ToString());
            metrics.Drop(tenant.Name, DropReason.Malformed);
            return TunnelEnd.BadFrame;
        }
        Volatile.Write(ref _lastRxTicks, Environment.TickCount64);
        switch (frame.Type)
        {
            case CstpPacketType.Data:
            case CstpPacketType.IsotunGso:
                bool offload = tenant.Tun!.Offload;
                // The payload lies in the reader's own buffer, writable and valid until the next read.
                var payload = System.Runtime.InteropServices.MemoryMarshal.AsMemory(frame.Payload);
                // Shaping, not policing: waiting here stops reading the TLS stream, so the client's TCP slows down. Every
                // packet is charged as it came, before its checks: one refused (spoofed, to another client, malformed)
                // costs the server as much to decrypt and look at as one let through.
                if (_session.Limits is { } limits) await limits.Rx.WaitAsync(payload.Length, ct).ConfigureAwait(false);
                // A GSO frame is laid out in place; a DATA frame is copied behind its header.
                byte[] scratch = frame.Type == CstpPacketType.Data ? Scratch : [];
                int len = CheckPacket(frame.Type, payload.Span, scratch, offload, out bool inPlace);
                if (len < 0) return TunnelEnd.BadFrame;
                if (len == 0) return null;
                var framed = inPlace ? payload[..len] : scratch.AsMemory(0, len);
                if ((_tunWriter ??= new TunWriter(tenant.TunQueue(Queue))).Write(framed, mayCoalesce: frame.Type == CstpPacketType.Data))
                {
                    int bytes = len - (offload ? VirtioNetHeader.Length : 0);
                    tenant.Traffic.Rx(bytes, Queue);
                    // This connection's own totals: one reader writes them, so plain adds (read with Volatile for the API).
                    Link.RxBytes += bytes;
                    Link.RxFrames++;
                }
                else metrics.Drop(tenant.Name, DropReason.TunWriteFailed);
                return null;
            case CstpPacketType.DpdRequest:
                // Offered like data, within the session's memory budget: a peer that sends requests and never reads
                // the answers has them dropped (and counted), not queued past the budget. Any frame is liveness to it.
                var answer = PacketBuffer.DpdResponse(frame.Payload.Span);
                if (Writer.Offer(answer) is var offered and not EnqueueResult.Queued)
                {
                    answer.Return();
                    metrics.Drop(tenant.Name, offered switch
                    {
                        EnqueueResult.OverBudget => DropReason.OverBudget,
                        EnqueueResult.Closed => DropReason.NoSession,
                        _ => DropReason.QueueFull,
                    });
                }
                return null;
            case CstpPacketType.Disconnect:
                bool user = frame.Payload.Length == 0 || frame.Payload.Span[0] == CstpDisconnectReason.User;
                return user ? TunnelEnd.UserDisconnect : TunnelEnd.PeerDisconnect;
            case CstpPacketType.Terminate:
                return TunnelEnd.PeerDisconnect;
            case CstpPacketType.Compressed:
                // Compression is never negotiated; ocserv closes here too.
                metrics.Drop(tenant.Name, DropReason.CompressedNotNegotiated);
                return TunnelEnd.BadFrame;
            default:
                return null; // DPD-RESP, KEEPALIVE: liveness only
        }
    }

    /// <summary>
    /// Checks a client packet and lays it out in <paramref name="scratch"/> as the TUN takes it (behind a
    /// virtio header when the TUN has offloads). Returns the length to write, 0 when the packet was dropped
    /// (and counted), or -1 when the peer keeps sending bad GSO headers and its connection must close.
    /// </summary>
    private int CheckPacket(CstpPacketType type, Span<byte> payload, byte[] scratch, bool tunOffload, out bool inPlace)
    {
        var tenant = _session.Tenant;
        var metrics = _session.Tenant.Metrics;
        inPlace = false;
        if (payload.Length == 0) return 0;
        Span<byte> packet;
        VirtioNetHeader header = default;
        if (type == CstpPacketType.IsotunGso)
        {
            if (!PeerGso || !tunOffload)
            {
                metrics.Drop(tenant.Name, DropReason.GsoNotNegotiated);
                return ++_badGso > MaxBadGso ? -1 : 0;
            }
            if (payload.Length <= VirtioNetHeader.Length)
            {
                metrics.Drop(tenant.Name, DropReason.BadGsoHeader);
                return ++_badGso > MaxBadGso ? -1 : 0;
            }
            // Checked and normalised where it lies in the read buffer: a super-packet is not copied.
            header = VirtioNetHeader.Read(payload);
            packet = payload[VirtioNetHeader.Length..];
            inPlace = true;
            if (GsoPacket.Validate(ref header, packet, Mtu, allowUdp: PeerUso) != GsoCheckResult.Ok)
            {
                metrics.Drop(tenant.Name, DropReason.BadGsoHeader);
                return ++_badGso > MaxBadGso ? -1 : 0;
            }
            // Only a super-packet may exceed the MTU; a plain one is held to it exactly as in a DATA frame.
            if (!header.IsGso && packet.Length > Mtu)
            {
                metrics.Drop(tenant.Name, DropReason.Oversize);
                return 0;
            }
        }
        else
        {
            if (payload.Length > Mtu)
            {
                metrics.Drop(tenant.Name, DropReason.Oversize);
                return 0;
            }
            int offset = tunOffload ? VirtioNetHeader.Length : 0;
            packet = scratch.AsSpan(offset, payload.Length);
            payload.CopyTo(packet);
        }
        if (IpPacket.TryParse(packet, out var info) != IpParseResult.Ok)
        {
            metrics.Drop(tenant.Name, DropReason.Malformed);
            return 0;
        }
        var source = IpKey.FromBytes(IpPacket.Source(packet, info));
        var site = _session.Site;
        // A source is the session's own address, or one inside the site it carries now; nothing else.
        bool fromSite = !_session.Owns(source);
        if (fromSite && (site is null || !site.Contains(source)))
        {
            metrics.Drop(tenant.Name, DropReason.SpoofedSource);
            return 0;
        }
        if (Refused(tenant, site, IpKey.FromBytes(IpPacket.Destination(packet, info))) is { } refused)
        {
            metrics.Drop(tenant.Name, refused);
            return 0;
        }
        if (fromSite) site!.CountRx(info.TotalLength);
        if (info.Protocol == 6 && !header.IsGso)
            MssClamp.TryClamp(packet, MssClamp.MssForMtu(Mtu, info.Version), checksumIsPartial: header.NeedsChecksum);
        if (!tunOffload) return info.TotalLength;
        // GSO frames keep their (normalised) header; plain ones get an empty one.
        header.Write(inPlace ? payload : scratch);
        return VirtioNetHeader.Length + info.TotalLength;
    }

    /// <summary>
    /// Why a packet from this session (carrying <paramref name="site"/>, or none) to <paramref name="destination"/> may
    /// not pass, or null. Clients reach clients when client-to-client is on; where the tenant has sites, its east-west
    /// policy decides between a site and anyone else (a site gateway's own address belongs to its site). The gateway
    /// and the uplink are always reachable.
    /// </summary>
    private static DropReason? Refused(TenantRuntime tenant, Site? site, IpKey destination)
    {
        var sites = tenant.Sites;
        bool toClient = tenant.IsClientAddress(destination);
        if (sites.IsEmpty) return toClient && !tenant.Config.ClientToClient ? DropReason.ClientToClient : null;
        var to = sites.Match(destination);
        if (to is null && toClient) to = tenant.RouteTo(destination)?.Site;
        if (to is null && !toClient) return null;
        if (to is null && site is null) return tenant.Config.ClientToClient ? null : DropReason.ClientToClient;
        return to == site || sites.Allows(site, to) ? null : DropReason.EastWest;
    }

    /// <summary>
    /// Dead-peer detection both ways. Inbound, like ocserv: a DPD-REQ after 2×DPD of silence, and the connection is
    /// dead after 3×DPD. Outbound: a peer that stops reading (frames wait in the send queue and none has gone out
    /// for 3×DPD) is dead too, so it does not hold its queued buffers for ever. The check sleeps until the next of
    /// those moments could come, at most one DPD interval, so an idle connection wakes a few times per DPD interval
    /// rather than every second (10,000 idle sessions cost the server 43 ms of CPU per second when each woke every
    /// second). It runs on a timer, disposed at the tunnel's end.
    /// </summary>
    private sealed class DeadPeerCheck(TunnelConnection tunnel)
    {
        private readonly long _dpdMs = tunnel._session.Tenant.Config.Dpd * 1000L;
        private long _probedAt = -1; // when the last probe went out, while it is unanswered
        private long _written = tunnel.Writer.FramesWritten, _progressAt = Environment.TickCount64;

        public TimeSpan First => TimeSpan.FromMilliseconds(Math.Min(1000, _dpdMs / 2));

        /// <summary>One check: null once the tunnel is ending or has been ended here, else when to check again.</summary>
        public TimeSpan? Run()
        {
            var (link, writer) = (tunnel.Link, tunnel.Writer);
            if (link.Ending.IsCancellationRequested) return null;
            long now = Environment.TickCount64;
            long lastRx = Volatile.Read(ref tunnel._lastRxTicks);
            if (_probedAt >= 0 && lastRx >= _probedAt) _probedAt = -1; // the peer spoke since the probe
            long silent = now - lastRx;
            if (silent >= 3 * _dpdMs)
            {
                link.Abort(TunnelEnd.DeadPeer);
                return null;
            }
            // A peer that stops reading holds the writer's last write (a batch's frames are counted as written when
            // copied, so the queue behind it may be empty): one write that takes 3×DPD is a stall too.
            long writing = Volatile.Read(ref writer.WriteSince);
            bool stuck = writing != 0 && now - writing >= 3 * _dpdMs;
            long nowWritten = Volatile.Read(ref writer.FramesWritten);
            if (!stuck && (writer.Queued == 0 || nowWritten != _written))
            {
                _written = nowWritten;
                _progressAt = now;
            }
            else if (stuck || now - _progressAt >= 3 * _dpdMs)
            {
                tunnel.StalledOut = true;
                link.Abort(TunnelEnd.DeadPeer);
                return null;
            }
            if (silent >= 2 * _dpdMs && _probedAt < 0)
            {
                _probedAt = now;
                var probe = PacketBuffer.Control(CstpPacketType.DpdRequest, ReadOnlySpan<byte>.Empty);
                if (!writer.TryEnqueue(probe)) probe.Return();
            }
            // The next moment a check could fire: the probe, the end of a silent peer, or of a stalled queue.
            long due = lastRx + (_probedAt >= 0 ? 3 : 2) * _dpdMs;
            if (writer.Queued > 0) due = Math.Min(due, _progressAt + 3 * _dpdMs);
            if (writing != 0) due = Math.Min(due, writing + 3 * _dpdMs);
            return TimeSpan.FromMilliseconds(Math.Clamp(due - now, 50, _dpdMs));
        }
    }
}
