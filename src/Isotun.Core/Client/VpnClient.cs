using System.Net;
using Isotun.Linux;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Ip;
using Isotun.Transport;
using Isotun.Tun;
using Microsoft.Extensions.Logging;

namespace Isotun.Client;

/// <summary>
/// `isotun connect`: logs in, opens the tunnel, configures the TUN device, and keeps the session alive
/// across lost TCP connections by reconnecting with the cookie and insisting on the same address.
/// </summary>
/// <param name="network">Opens and configures the TUN: the kernel's by default, a memory twin in tests.</param>
public sealed partial class VpnClient(ClientOptions options, ILogger log, IClientNetwork? network = null)
{
    /// <summary>A connection up at least this long was a good one: the reconnects after it start afresh.</summary>
    public static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(10);

    /// <summary>How long the further queues may take to join before the tunnel runs without the ones not there yet.</summary>
    public static readonly TimeSpan JoinWait = TimeSpan.FromSeconds(5);

    private readonly IClientNetwork _network = network ?? new KernelClientNetwork(options);
    // The TUN's queues, opened at the first CONNECT: as many as the server granted then.
    private ITunQueue[] _tuns = [];
    // The writers of the connections up now, queue 0 (the primary) first; empty while reconnecting.
    private volatile FrameWriter[] _writers = [];
    private volatile bool _peerGso, _peerUso;
    private volatile bool _tunStopping;
    // The server's address, from the tunnel's first connection: queues and reconnects go there (not to what the name
    // resolves to later, perhaps through the tunnel), and the routes keep it on the underlay.
    private IPAddress? _serverAddress;
    private IsotunExtension _accepted;
    private int _granted = 1;
    private TunnelParameters? _params;
    private string? _cookie;
    private string? _serverEndReason;
    private string? _byeError; // why the DISCONNECT of a stop could not be sent, if it could not
    private long _lastTxTicks;
    // A TUN thread whose device failed (deleted under the client, say) says why here and cancels the run: the client
    // then ends with exit 1, telling the server, instead of running on with no TUN while the host's traffic leaves
    // outside the tunnel.
    private volatile string? _tunFailure;
    private CancellationTokenSource? _tunFailed;

    public TunnelParameters? Parameters => _params;
    /// <summary>Packets read from the TUN while no connection was up (reported, then reset, at each reconnect).</summary>
    public long DroppedWhileReconnecting;

    /// <summary>Runs until Ctrl-C (returns Ok after a DISCONNECT), or fails with a <see cref="ClientException"/>.</summary>
    public async Task<ClientExitCode> RunAsync(CancellationToken stop)
    {
        using var tunFailed = CancellationTokenSource.CreateLinkedTokenSource(stop);
        _tunFailed = tunFailed;
        var code = await RunUntilStoppedAsync(tunFailed.Token).ConfigureAwait(false);
        if (_tunFailure is { } why) throw new ClientException(ClientExitCode.Failure, $"the TUN device failed: {why}; the session was logged off");
        return code;
    }

    private async Task<ClientExitCode> RunUntilStoppedAsync(CancellationToken stop)
    {
        _cookie = options.Cookie ?? await AuthClient.LoginAsync(options, stop).ConfigureAwait(false);
        Log.LoggedIn(log, options.Server.Host);
        Thread[] tunThreads = [];
        try
        {
            DateTimeOffset? lostAt = null;
            int attempt = 0;
            // Waits before the next attempt (1, 2, 4, then every 8 s); false when stopped meanwhile. When the next attempt
            // would start past the reconnect timeout since the connection was lost, the client gives up now.
            async Task<bool> BackOffAsync(string why)
            {
                var delay = TimeSpan.FromSeconds(1 << Math.Min(attempt++, 3));
                if (DateTimeOffset.UtcNow - lostAt + delay >= options.ReconnectTimeout)
                    throw new ClientException(ClientExitCode.Failure, $"could not reconnect within {options.ReconnectTimeout.TotalSeconds:0} s: {why}");
                Log.ReconnectFailed(log, why, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, stop).ConfigureAwait(false);
                    return true;
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
            }
            while (true)
            {
                HttpsConnection conn;
                // While reconnecting, an attempt gets no more than the time left (a CONNECT the server never answers
                // takes 30 s, on top of 15 s to connect): the reconnect timeout holds to the second.
                using var attemptEnds = CancellationTokenSource.CreateLinkedTokenSource(stop);
                if (lostAt is { } since) attemptEnds.CancelAfter(TimeSpan.FromTicks(Math.Max(options.ReconnectTimeout.Ticks - (DateTimeOffset.UtcNow - since).Ticks, TimeSpan.TicksPerMillisecond)));
                try
                {
                    conn = await ConnectTunnelAsync(attemptEnds.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_params is not null && attemptEnds.IsCancellationRequested && !stop.IsCancellationRequested)
                {
                    throw new ClientException(ClientExitCode.Failure, $"could not reconnect within {options.ReconnectTimeout.TotalSeconds:0} s: the last attempt did not finish in time");
                }
                catch (ClientException e) when (_params is not null && (e.Code == ClientExitCode.Failure || e.Transient) && !stop.IsCancellationRequested)
                {
                    lostAt ??= DateTimeOffset.UtcNow;
                    if (!await BackOffAsync(e.Message).ConfigureAwait(false))
                    {
                        await LogOffAsync().ConfigureAwait(false);
                        return ClientExitCode.Ok;
                    }
                    continue;
                }
                catch (Exception) when (_params is not null && stop.IsCancellationRequested)
                {
                    // Stopped in the middle of a reconnect.
                    await LogOffAsync().ConfigureAwait(false);
                    return ClientExitCode.Ok;
                }
                var connections = await JoinQueuesAsync(conn, stop).ConfigureAwait(false);
                var upAt = DateTimeOffset.UtcNow; // from when the group runs: a long join is no time the connection was up
                if (tunThreads.Length == 0)
                {
                    tunThreads = _tuns.Select((tun, q) => new Thread(() => TunReadLoop(tun, q)) { IsBackground = true, Name = $"tun-client-{q}" }).ToArray();
                    foreach (var t in tunThreads) t.Start();
                }
                var end = await RunGroupAsync(connections, stop).ConfigureAwait(false);
                switch (end)
                {
                    case TunnelEnd.UserDisconnect:
                        if (_byeError is { } error) Log.LogOffFailed(log, error);
                        else Log.Disconnected(log);
                        return ClientExitCode.Ok;
                    case TunnelEnd.PeerDisconnect:
                        throw new ClientException(ClientExitCode.SessionEnded, $"the server ended the session ({_serverEndReason})");
                    case TunnelEnd.BadFrame:
                        throw new ClientException(ClientExitCode.ProtocolError, "the server sent a malformed frame");
                    default:
                        Log.ConnectionLost(log, end.ToString());
                        break;
                }
                // A connection that stayed up a while starts the reconnects afresh. One that ended at once (a server
                // that answers CONNECT and closes) counts as a failed attempt: it waits its turn, and the reconnect
                // timeout runs on, instead of the client reconnecting in a loop as fast as it can.
                if (DateTimeOffset.UtcNow - upAt >= StableAfter)
                {
                    lostAt = DateTimeOffset.UtcNow; // the reconnect timeout runs from the loss, not from a first failed attempt
                    attempt = 0;
                }
                else
                {
                    lostAt ??= upAt;
                    if (!await BackOffAsync($"the connection ended after {(DateTimeOffset.UtcNow - upAt).TotalSeconds:0.#} s ({end})").ConfigureAwait(false))
                    {
                        await LogOffAsync().ConfigureAwait(false);
                        return ClientExitCode.Ok;
                    }
                }
            }
        }
        finally
        {
            _writers = [];
            // The TUN threads wait without a timeout: told to stop, their waits are interrupted; the devices close
            // once the threads are out (a closed descriptor wakes no one waiting on it).
            _tunStopping = true;
            foreach (var tun in _tuns) tun.Interrupt();
            foreach (var t in tunThreads) t.Join(TimeSpan.FromSeconds(1));
            foreach (var tun in _tuns) tun.Dispose();
            if (_tuns.Length > 0) _network.Close();
        }
    }

    /// <summary>
    /// A stop while reconnecting: there is no connection to say goodbye on, so one short try opens one, and
    /// sends the DISCONNECT there, so that the cookie does not outlive the client.
    /// </summary>
    private async Task LogOffAsync()
    {
        if (await ByeOnNewConnectionAsync().ConfigureAwait(false) is { } error) Log.LogOffFailed(log, error);
        else Log.Disconnected(log);
    }

    /// <summary>How long a stop waits for what is queued to go before the DISCONNECT, on a connection still up.</summary>
    public static readonly TimeSpan ByeWait = TimeSpan.FromSeconds(2);

    /// <summary>Opens a connection with the cookie and sends the DISCONNECT there, within 5 s; null once sent, else why not.</summary>
    private async Task<string?> ByeOnNewConnectionAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            var conn = await ConnectTunnelAsync(cts.Token).ConfigureAwait(false);
            var error = await SendByeAsync(conn).ConfigureAwait(false);
            await conn.DisposeAsync().ConfigureAwait(false);
            return error;
        }
        catch (Exception e)
        {
            return e is OperationCanceledException ? "timed out" : e.Message;
        }
    }

    /// <summary>
    /// Opens the further queues the server granted next to <paramref name="primary"/>, all at once. One that
    /// cannot join is logged and left out for now: the session works on the queues it has, and the group tries
    /// it again later. Never throws: a stop that comes meanwhile is left to the group, whose primary then logs off.
    /// </summary>
    private async Task<List<(int Queue, HttpsConnection Connection)>> JoinQueuesAsync(HttpsConnection primary, CancellationToken stop)
    {
        int queues = Math.Min(_granted, _tuns.Length);
        var joins = Enumerable.Range(1, queues - 1).Select(async q =>
        {
            try
            {
                return (q, await ConnectTunnelAsync(stop, q).ConfigureAwait(false));
            }
            catch (Exception e)
            {
                if (!stop.IsCancellationRequested) Log.QueueFailed(log, q, e.Message);
                return (q, (HttpsConnection?)null);
            }
        }).ToArray();
        var connections = new List<(int, HttpsConnection)> { (0, primary) };
        // Nobody reads the primary while the joins go on (no DPD answered, no packet carried): a join that takes
        // longer than this is let go, and the group joins that queue again in the background.
        try
        {
            await Task.WhenAll(joins).WaitAsync(JoinWait, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }
        for (int i = 0; i < joins.Length; i++)
        {
            var join = joins[i];
            if (join.IsCompletedSuccessfully && join.Result.Item2 is { } c) connections.Add((join.Result.q, c));
            else if (!join.IsCompleted)
            {
                if (!stop.IsCancellationRequested) Log.QueueFailed(log, i + 1, $"no answer within {JoinWait.TotalSeconds:0} s");
                _ = join.ContinueWith(static t => { if (t.IsCompletedSuccessfully && t.Result.Item2 is { } late) _ = late.DisposeAsync(); },
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        if (queues > 1) Log.QueuesUp(log, connections.Count);
        return connections;
    }

    /// <summary>
    /// TLS + CONNECT. Queue 0 (the primary) negotiates the session's extensions and queue count, and on the first
    /// call also creates and configures the TUN; a further queue names its index and must get the same address.
    /// </summary>
    private async Task<HttpsConnection> ConnectTunnelAsync(CancellationToken stop, int queue = 0)
    {
        var conn = await HttpsConnection.OpenAsync(options, stop, _serverAddress).ConfigureAwait(false);
        try
        {
            var headers = new List<KeyValuePair<string, string>>
            {
                new("User-Agent", options.UserAgent),
                new("Cookie", SessionCookie.CookieValue(_cookie ?? throw new InvalidOperationException("CONNECT needs the cookie of a login first"))),
                new("X-CSTP-Version", "1"),
                new("X-CSTP-Hostname", SafeHostName()),
                new("X-CSTP-Base-MTU", "1500"),
                new("X-CSTP-Address-Type", "IPv6,IPv4"),
                new("X-CSTP-Full-IPv6-Capability", "true"),
            };
            bool askQueues = options.Extensions && options.Queues > 1;
            if (options.Extensions) headers.Add(new(IsotunExtensions.Header, Offer(askQueues)));
            if (askQueues && queue == 0) headers.Add(new(IsotunExtensions.QueuesHeader, options.Queues.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            if (queue > 0) headers.Add(new(IsotunExtensions.QueueHeader, queue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            if (_params is not null) headers.Add(new("X-CSTP-Address", _params.Address.ToString()));
            var (head, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", AuthClient.HostHeader(options.Server), headers, null, true, TimeSpan.FromSeconds(30), stop).ConfigureAwait(false);
            if (head.StatusCode == 401)
                throw new ClientException(ClientExitCode.SessionEnded, "the server rejected the session cookie (logged out or expired)");
            if (head.StatusCode != 200)
                throw new ClientException(head.StatusCode == 503 ? ClientExitCode.Failure : ClientExitCode.ProtocolError,
                    $"CONNECT refused: HTTP {head.StatusCode} {head.Headers.Get("X-Reason") ?? head.Reason}");
            var p = TunnelParameters.Parse(head);
            // The server's DPD may be a day (a silent server, or a path a NAT dropped, found two days later): the
            // user's --force-dpd bounds it, as openconnect's does.
            if (options.ForceDpd is int force && force < p.Dpd) p = p with { Dpd = force };
            if (queue > 0)
            {
                if (_params is null || !p.Address.Equals(_params.Address))
                    throw new ClientException(ClientExitCode.ProtocolError, $"queue {queue} was given another address ({p.Address})");
                return conn;
            }
            _accepted = options.Extensions ? IsotunExtensions.Parse(head.Headers.Get(IsotunExtensions.Header)) : IsotunExtension.None;
            // Never more queues than asked for, whatever the server says.
            _granted = _accepted.HasFlag(IsotunExtension.Queues)
                ? Math.Min(IsotunExtensions.ParseCount(head.Headers.Get(IsotunExtensions.QueuesHeader), 1, IsotunExtensions.MaxQueues) ?? 1, options.Queues)
                : 1;
            if (_params is null)
            {
                await IoThreads.LeaveAsync(); // opening the TUN runs `ip`: not on the epoll thread the reply may have come in on
                _serverAddress = conn.RemoteAddress;
                _tuns = _network.Open(p, _granted, _serverAddress);
                _params = p;
                Log.Connected(log, p.Address6 is null ? p.Address.ToString() : $"{p.Address} {p.Address6}", p.Mtu, string.Join(", ", p.SplitInclude), string.Join(", ", p.Dns));
            }
            else if (!p.Address.Equals(_params.Address))
            {
                throw new ClientException(ClientExitCode.SessionEnded, $"reconnect gave a different address ({p.Address} instead of {_params.Address})");
            }
            else
            {
                Log.Reconnected(log, p.Address.ToString(), Interlocked.Exchange(ref DroppedWhileReconnecting, 0));
                // The server may have another MTU, DPD or keepalive now (a tenant changed and restarted, another node):
                // packets above its MTU would be dropped there. The routes stay those of the first connection.
                if (p.Mtu != _params.Mtu)
                {
                    await IoThreads.LeaveAsync(); // `ip` runs: not on the epoll thread
                    _network.SetMtu(p.Mtu);
                    Log.MtuChanged(log, _params.Mtu, p.Mtu);
                }
                _params = _params with { Mtu = p.Mtu, Dpd = p.Dpd, Keepalive = p.Keepalive };
            }
            return conn;
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Packets flow from here on: the TUN has its addresses, is up and routed, its reader threads run, and a
    /// connection takes what they read. A supervisor is told so (systemd's Type=notify, or `isotun lab`, which waits
    /// for this and not merely for an address on the TUN, which comes before the rest).
    /// </summary>
    private void TunnelReady()
    {
        var p = _params!;
        SystemdNotify.Ready(p.Address6 is null ? $"tunnel up: {p.Address}" : $"tunnel up: {p.Address} {p.Address6}");
    }

    /// <summary>What the client offers: batching always; GSO and USO with offloads (a TUN without USO cuts UDP super-packets itself); queues when asked for.</summary>
    private string Offer(bool queues)
    {
        var offer = IsotunExtension.Batch | (options.Offload ? IsotunExtension.Gso | IsotunExtension.Uso : IsotunExtension.None)
            | (queues ? IsotunExtension.Queues : IsotunExtension.None);
        return IsotunExtensions.Format(offer);
    }

    private static string SafeHostName()
    {
        var h = Environment.MachineName;
        return h.Length > 0 && h.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.') ? h : "isotun";
    }

    /// <summary>
    /// TUN → server: a dedicated thread per TUN queue, sending on the connection of the same queue (or, with
    /// fewer connections up, on one picked by the queue number). Packets are dropped (and counted) only while
    /// reconnecting. The kernel keeps each flow on one TUN queue, so a flow keeps its order. An idle queue's thread
    /// sleeps until a packet comes or the client stops: no timer wakes it.
    /// </summary>
    private void TunReadLoop(ITunQueue tun, int queue)
    {
        Func<PacketBuffer, EnqueueResult> enqueue = frame => EnqueueWaiting(frame, queue) ? EnqueueResult.Queued : EnqueueResult.QueueFull;
        // A batch of one: each buffer passes to the writer as soon as it is read.
        var bufs = new Memory<byte>[1];
        var sizes = new int[1];
        PacketBuffer? buf = null;
        while (!_tunStopping)
        {
            buf ??= PacketBuffer.Rent(tun.Offload ? PacketBuffer.Capacity : _params!.Mtu);
            bufs[0] = buf.Array;
            int read;
            try { read = tun.Read(bufs, sizes, CstpFrame.HeaderLength); }
            catch (TunException e)
            {
                if (_tunStopping) break; // closed at the client's own stop
                Log.TunFailed(log, e.Message);
                _tunFailure ??= e.Message;
                _ = _tunFailed?.CancelAsync(); // its callbacks run off this thread
                break;
            }
            if (read < 0) break;
            if (read == 0)
            {
                tun.WaitReadable(Timeout.Infinite);
                continue;
            }
            int n = sizes[0];
            TunFrames.Send(buf, n, tun.Offload, _peerGso, _peerUso, _params!.Mtu, enqueue, out bool consumed);
            if (consumed)
            {
                Volatile.Write(ref _lastTxTicks, Environment.TickCount64);
                buf = null;
            }
        }
        buf?.Return();
    }

    /// <summary>
    /// Waits for room rather than drop: the kernel's TUN queue then pushes back on local senders (one
    /// connection, no one else to starve), which TCP takes far better than a loss.
    /// </summary>
    private bool EnqueueWaiting(PacketBuffer frame, int queue)
    {
        var writers = _writers;
        while (writers.Length > 0)
        {
            var w = writers[queue % writers.Length];
            if (w.TryEnqueue(frame)) return true;
            if (w.WaitForRoom(TimeSpan.FromSeconds(1))) continue;
            // Closed, or stuck for a second: look again at which connections are up.
            var now = _writers;
            if (ReferenceEquals(now, writers)) Thread.Sleep(10);
            writers = now;
        }
        Interlocked.Increment(ref DroppedWhileReconnecting);
        return false;
    }

    private enum TunnelEnd { PeerClosed, UserDisconnect, PeerDisconnect, BadFrame, DeadPeer }
}
