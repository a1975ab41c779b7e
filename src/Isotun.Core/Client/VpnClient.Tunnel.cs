using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;
using Isotun.Transport;

namespace Isotun.Client;

public sealed partial class VpnClient
{
    /// <summary>One connection of the group: queue 0 is the primary.</summary>
    private sealed class Lane(int queue, HttpsConnection connection, FrameWriter writer)
    {
        public int Queue { get; } = queue;
        public HttpsConnection Connection { get; } = connection;
        public FrameWriter Writer { get; } = writer;
        public long LastRxTicks = Environment.TickCount64;
    }

    /// <summary>
    /// Runs the connections of one group (the primary and its queues) until the primary ends, or any of them
    /// brings the session's end (a DISCONNECT, a bad frame). A queue that ends alone is let go and joined again
    /// (after 1, 2, 4… up to 30 s; a queue that lived less than <see cref="StableAfter"/> goes on from its last wait)
    /// while the primary lives; meanwhile its TUN queue sends on the others. The group
    /// owns its connections and disposes of them.
    /// </summary>
    private async Task<TunnelEnd> RunGroupAsync(List<(int Queue, HttpsConnection Connection)> connections, CancellationToken stop)
    {
        using var group = CancellationTokenSource.CreateLinkedTokenSource(stop);
        // The TUN was opened once; GSO frames flow only while this group negotiated them.
        _peerGso = _accepted.HasFlag(IsotunExtension.Gso) && _tuns[0].Offload;
        _peerUso = _peerGso && _accepted.HasFlag(IsotunExtension.Uso);
        Volatile.Write(ref _lastTxTicks, Environment.TickCount64);
        var lanes = new List<Lane>();
        var running = new List<Task<TunnelEnd>>();
        var rejoins = new List<Task<(int Queue, HttpsConnection? Connection, TimeSpan Waited)>>();
        // Per queue: when it last joined, and the wait before that join (a queue that keeps dropping at once is not
        // joined again every second: its waits go on doubling).
        var joined = new Dictionary<int, (DateTimeOffset At, TimeSpan Waited)>();
        // In queue order, so that with every queue up TUN queue k sends on connection k.
        void Publish() => _writers = lanes.OrderBy(l => l.Queue).Select(l => l.Writer).ToArray();
        void Add(int queue, HttpsConnection connection)
        {
            // With GSO the TUN thread runs the writer itself (super-packets: one hand-off saved per 64 KiB); without,
            // a pool thread writes while the TUN thread reads on, and packs what queued meanwhile into one send.
            var lane = new Lane(queue, connection, new FrameWriter(connection.Stream, _peerGso ? 256 : FrameWriter.DefaultQueueDepth, inline: _peerGso)
            {
                Batching = _accepted.HasFlag(IsotunExtension.Batch),
            });
            lanes.Add(lane);
            joined[queue] = (DateTimeOffset.UtcNow, joined.GetValueOrDefault(queue).Waited);
            running.Add(RunLaneAsync(lane, group, stop));
            Publish();
        }
        foreach (var (queue, connection) in connections) Add(queue, connection);
        TunnelReady();
        foreach (int missing in Enumerable.Range(1, Math.Max(0, Math.Min(_granted, _tuns.Length) - 1)).Except(connections.Select(c => c.Queue)))
            rejoins.Add(RejoinAsync(missing, TimeSpan.FromSeconds(1), group.Token));

        TunnelEnd end;
        while (true)
        {
            var done = await Task.WhenAny(running.Cast<Task>().Concat(rejoins)).ConfigureAwait(false);
            if (done is Task<(int, HttpsConnection?, TimeSpan)> rejoin && rejoins.Remove(rejoin))
            {
                var (queue, connection, waited) = await rejoin.ConfigureAwait(false);
                if (connection is null) continue;
                joined[queue] = (default, waited);
                Add(queue, connection);
                Log.QueueRejoined(log, queue, lanes.Count);
                continue;
            }
            int i = running.IndexOf((Task<TunnelEnd>)done);
            var lane = lanes[i];
            var laneEnd = await running[i].ConfigureAwait(false);
            if (lane.Queue == 0 || laneEnd is TunnelEnd.UserDisconnect or TunnelEnd.PeerDisconnect or TunnelEnd.BadFrame)
            {
                end = laneEnd;
                break;
            }
            running.RemoveAt(i);
            lanes.RemoveAt(i);
            Publish();
            await lane.Connection.DisposeAsync().ConfigureAwait(false);
            Log.QueueLost(log, lane.Queue, laneEnd.ToString(), lanes.Count);
            var (at, before) = joined.GetValueOrDefault(lane.Queue);
            var wait = DateTimeOffset.UtcNow - at < StableAfter && before > TimeSpan.Zero ? NextWait(before) : TimeSpan.FromSeconds(1);
            rejoins.Add(RejoinAsync(lane.Queue, wait, group.Token));
        }
        _writers = [];
        group.Cancel();
        try { await Task.WhenAll(running).ConfigureAwait(false); } catch (Exception) { }
        foreach (var rejoin in rejoins)
            if ((await rejoin.ConfigureAwait(false)).Connection is { } late) await late.DisposeAsync().ConfigureAwait(false);
        foreach (var lane in lanes) await lane.Connection.DisposeAsync().ConfigureAwait(false);
        return end;
    }

    /// <summary>
    /// Joins queue <paramref name="queue"/> again after <paramref name="delay"/>, retrying with back-off; null once the
    /// group ends. Also returns the wait before the join that succeeded.
    /// </summary>
    private async Task<(int Queue, HttpsConnection? Connection, TimeSpan Waited)> RejoinAsync(int queue, TimeSpan delay, CancellationToken group)
    {
        while (true)
        {
            try
            {
                await Task.Delay(delay, group).ConfigureAwait(false);
                return (queue, await ConnectTunnelAsync(group, queue).ConfigureAwait(false), delay);
            }
            catch (Exception) when (group.IsCancellationRequested)
            {
                return (queue, null, delay);
            }
            catch (Exception e)
            {
                Log.QueueFailed(log, queue, e.Message);
            }
            delay = NextWait(delay);
        }
    }

    /// <summary>The wait after <paramref name="delay"/>: twice as long, up to 30 s.</summary>
    private static TimeSpan NextWait(TimeSpan delay) => TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2));

    private async Task<TunnelEnd> RunLaneAsync(Lane lane, CancellationTokenSource group, CancellationToken stop)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(group.Token);
        // The writer's own, not the group's: a stop lets it finish the record it is writing (one cut there makes the
        // DISCONNECT after it garbage to the server, which then keeps the session and its cookie).
        using var writing = new CancellationTokenSource();
        var writer = lane.Writer;
        var writerTask = writer.RunAsync(writing.Token);
        using var timers = StartTimers(lane, cts);
        TunnelEnd end;
        try
        {
            end = await ReadLoopAsync(lane, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested && lane.Queue == 0)
        {
            // Ctrl-C / SIGTERM: say goodbye so the server invalidates the cookie (openconnect sends the same).
            // The primary says it for the group; the server then closes the queues.
            // What is queued goes first, within ByeWait: a connection that takes nothing more (a server that stopped
            // reading) is left, and the DISCONNECT goes on a new one.
            writer.Complete();
            if (await Task.WhenAny(writerTask, Task.Delay(ByeWait)).ConfigureAwait(false) == writerTask)
            {
                _byeError = await SendByeAsync(lane.Connection).ConfigureAwait(false);
            }
            else
            {
                writing.Cancel();
                _byeError = await ByeOnNewConnectionAsync().ConfigureAwait(false);
            }
            end = TunnelEnd.UserDisconnect;
        }
        catch (OperationCanceledException)
        {
            end = stop.IsCancellationRequested || group.IsCancellationRequested ? TunnelEnd.PeerClosed : TunnelEnd.DeadPeer;
        }
        catch (IOException)
        {
            end = TunnelEnd.PeerClosed;
        }
        writer.Complete();
        cts.Cancel();
        writing.Cancel();
        try { await writerTask.ConfigureAwait(false); } catch (Exception) { }
        return end;
    }

    private async Task<TunnelEnd> ReadLoopAsync(Lane lane, CancellationToken ct)
    {
        var conn = lane.Connection;
        var writer = lane.Writer;
        var tun = _tuns[lane.Queue % _tuns.Length];
        var tunWriter = new TunWriter(tun);
        // Rented for the life of the connection (and only touched pages count): idle sessions stay small.
        byte[] scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(PacketBuffer.Capacity + VirtioNetHeader.Length);
        int badGso = 0;
        try
        {
            while (true)
            {
                // A frame already buffered is returned without looking at the token: a stop must not wait for silence.
                ct.ThrowIfCancellationRequested();
                var frame = await conn.Reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, ct).ConfigureAwait(false);
                // Every frame already buffered is handled before reading again, so runs of segments can merge.
                do
                {
                    if (frame.Status == FrameReadStatus.EndOfStream) { tunWriter.Flush(); return TunnelEnd.PeerClosed; }
                    if (frame.Status == FrameReadStatus.BadFrame)
                    {
                        Log.BadFrame(log, frame.Parse.ToString());
                        return TunnelEnd.BadFrame;
                    }
                    Volatile.Write(ref lane.LastRxTicks, Environment.TickCount64);
                    switch (frame.Type)
                    {
                        case CstpPacketType.Data:
                        case CstpPacketType.IsotunGso:
                            var payload = System.Runtime.InteropServices.MemoryMarshal.AsMemory(frame.Payload);
                            int len = ToTun(frame.Type, payload.Span, scratch, tun.Offload);
                            // GSO frames are checked where they lie in the read buffer; plain packets are laid out in scratch.
                            if (len > 0) tunWriter.Write(frame.Type == CstpPacketType.IsotunGso ? payload[..len] : scratch.AsMemory(0, len), mayCoalesce: frame.Type == CstpPacketType.Data);
                            else if (len < 0 && ++badGso > 8)
                            {
                                Log.BadFrame(log, "repeated bad GSO frames");
                                return TunnelEnd.BadFrame;
                            }
                            break;
                        case CstpPacketType.DpdRequest:
                            await writer.EnqueueAsync(PacketBuffer.DpdResponse(frame.Payload.Span), ct).ConfigureAwait(false);
                            break;
                        case CstpPacketType.Disconnect:
                        case CstpPacketType.Terminate:
                            tunWriter.Flush();
                            _serverEndReason = frame.Payload.Length > 1 ? Printable(frame.Payload.Span[1..Math.Min(frame.Payload.Length, 200)]) : frame.Type.ToString();
                            Log.ServerEnded(log, _serverEndReason);
                            return TunnelEnd.PeerDisconnect;
                        case CstpPacketType.Compressed:
                            return TunnelEnd.BadFrame;
                    }
                }
                while (conn.Reader.TryReadBufferedFrame(CstpFrame.MaxPayloadLength, out frame));
                // Hold the merge across the next read only when that read will not wait.
                if (!conn.MorePending) tunWriter.Flush();
            }
        }
        finally
        {
            // Back for the next connection's reader (a reconnect): nothing holds it once this loop has ended.
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// Lays a server packet out in <paramref name="scratch"/> as the TUN takes it. Returns the length to
    /// write, 0 to skip, -1 for a GSO frame that was not negotiated, whose header fails validation, or that
    /// holds a plain packet above the MTU.
    /// </summary>
    private int ToTun(CstpPacketType type, Span<byte> payload, byte[] scratch, bool tunOffload)
    {
        if (payload.Length == 0) return 0;
        if (type == CstpPacketType.IsotunGso)
        {
            if (!_peerGso || payload.Length <= VirtioNetHeader.Length) return -1;
            var header = VirtioNetHeader.Read(payload);
            if (GsoPacket.Validate(ref header, payload[VirtioNetHeader.Length..], _params!.Mtu, allowUdp: _peerUso) != GsoCheckResult.Ok)
                return -1;
            // Only a super-packet may exceed the MTU: a server's TUN never makes a plain one that large.
            if (!header.IsGso && payload.Length - VirtioNetHeader.Length > _params.Mtu) return -1;
            header.Write(payload);
            return payload.Length;
        }
        if (!tunOffload)
        {
            payload.CopyTo(scratch);
            return payload.Length;
        }
        scratch.AsSpan(0, VirtioNetHeader.Length).Clear();
        payload.CopyTo(scratch.AsSpan(VirtioNetHeader.Length));
        return VirtioNetHeader.Length + payload.Length;
    }

    /// <summary>
    /// DPD per connection: probe after DPD seconds of silence, give up after twice that. Keepalive after idle tx,
    /// on the primary only (the server probes idle queues itself). Checked when one of them can next be due, not on a
    /// fixed tick: an idle client wakes for its DPD and keepalive, nothing else.
    /// </summary>
    private RecheckTimer StartTimers(Lane lane, CancellationTokenSource cts)
    {
        var writer = lane.Writer;
        long dpdMs = _params!.Dpd * 1000L, kaMs = _params.Keepalive * 1000L; // both at least a second (ConnectReply)
        long lastProbe = 0;
        TimeSpan? Check()
        {
            if (cts.IsCancellationRequested) return null;
            long now = Environment.TickCount64;
            long lastRx = Volatile.Read(ref lane.LastRxTicks);
            long silent = now - lastRx;
            if (silent >= 2 * dpdMs)
            {
                Log.DeadPeer(log, silent / 1000);
                _ = cts.CancelAsync(); // the lane ends on its own threads, not on the timer's
                return null;
            }
            if (silent >= dpdMs && now - lastProbe >= dpdMs / 2)
            {
                lastProbe = now;
                var probe = PacketBuffer.Control(CstpPacketType.DpdRequest, ReadOnlySpan<byte>.Empty);
                if (!writer.TryEnqueue(probe)) probe.Return();
            }
            long due = Math.Min(lastRx + 2 * dpdMs, Math.Max(lastRx + dpdMs, lastProbe + dpdMs / 2));
            if (lane.Queue == 0)
            {
                if (now - Volatile.Read(ref _lastTxTicks) >= kaMs)
                {
                    Volatile.Write(ref _lastTxTicks, now);
                    var ka = PacketBuffer.Control(CstpPacketType.Keepalive, ReadOnlySpan<byte>.Empty);
                    if (!writer.TryEnqueue(ka)) ka.Return();
                }
                due = Math.Min(due, Volatile.Read(ref _lastTxTicks) + kaMs);
            }
            // Traffic moves the times on, so the check may come early and find nothing due; it then waits again.
            return TimeSpan.FromMilliseconds(Math.Max(due - now, MinRecheckMs));
        }
        return new RecheckTimer(Check, TimeSpan.FromMilliseconds(Math.Min(dpdMs, kaMs)));
    }

    /// <summary>The shortest wait between two checks of the timers: a due time just missed is not spun on.</summary>
    private const long MinRecheckMs = 50;

    /// <summary>
    /// Logs off: a DISCONNECT with the user's reason, so the server ends the session and its cookie. Returns why it
    /// could not be sent (within 2 s), or null once it is written.
    /// </summary>
    internal static async Task<string?> SendByeAsync(HttpsConnection conn)
    {
        // Written directly: the writer loop has already stopped.
        var bye = new byte[CstpFrame.HeaderLength + 18];
        var payload = new byte[18];
        payload[0] = CstpDisconnectReason.User;
        System.Text.Encoding.ASCII.GetBytes("Aborted by caller", payload.AsSpan(1));
        int n = CstpFrame.Write(bye, CstpPacketType.Disconnect, payload);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await conn.Stream.WriteAsync(bye.AsMemory(0, n), cts.Token).ConfigureAwait(false);
            await conn.Stream.FlushAsync(cts.Token).ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return e is OperationCanceledException ? "the DISCONNECT could not be sent within 2 s" : e.Message;
        }
    }

    /// <summary>The server's reason text, for the log and the exit message: printable ASCII only.</summary>
    private static string Printable(ReadOnlySpan<byte> text)
    {
        text = text.TrimEnd((byte)0);
        var chars = new char[text.Length];
        for (int i = 0; i < text.Length; i++) chars[i] = text[i] is >= 0x20 and < 0x7f ? (char)text[i] : '?';
        return new string(chars).Trim();
    }
}
