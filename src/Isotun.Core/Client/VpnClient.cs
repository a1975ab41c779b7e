using System.Net;
using Isotun.Linux;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Client;

/// <summary>
/// `isotun connect`: logs in, opens the tunnel, configures the TUN device, and keeps the session alive
/// across lost TCP connections by reconnecting with the cookie and insisting on the same address.
/// </summary>
public sealed partial class VpnClient(ClientOptions options, ILogger log)
{
    private TunDevice? _tun;
    private volatile FrameWriter? _writer;
    private volatile bool _peerGso;
    private IsotunExtension _accepted;
    private Func<PacketBuffer, bool>? _enqueueWaiting;
    private TunnelParameters? _params;
    private string? _cookie;
    private string? _serverEndReason;
    private long _lastRxTicks, _lastTxTicks;

    public TunnelParameters? Parameters => _params;
    /// <summary>Packets read from the TUN while no connection was up (reported, then reset, at each reconnect).</summary>
    public long DroppedWhileReconnecting;

    /// <summary>Runs until Ctrl-C (returns Ok after a DISCONNECT), or fails with a <see cref="ClientException"/>.</summary>
    public async Task<ClientExitCode> RunAsync(CancellationToken stop)
    {
        _cookie = options.Cookie ?? await AuthClient.LoginAsync(options, stop).ConfigureAwait(false);
        Log.LoggedIn(log, options.Server.Host);
        Thread? tunThread = null;
        try
        {
            DateTimeOffset? lostAt = null;
            int attempt = 0;
            while (true)
            {
                HttpsConnection conn;
                try
                {
                    conn = await ConnectTunnelAsync(stop).ConfigureAwait(false);
                }
                catch (ClientException e) when (_params is not null && e.Code == ClientExitCode.Failure && !stop.IsCancellationRequested)
                {
                    lostAt ??= DateTimeOffset.UtcNow;
                    if (DateTimeOffset.UtcNow - lostAt > options.ReconnectTimeout)
                        throw new ClientException(ClientExitCode.Failure, $"could not reconnect within {options.ReconnectTimeout.TotalSeconds:0} s: {e.Message}");
                    var delay = TimeSpan.FromSeconds(Math.Min(10, 1 << Math.Min(attempt++, 3)));
                    Log.ReconnectFailed(log, e.Message, delay.TotalSeconds);
                    await Task.Delay(delay, stop).ConfigureAwait(false);
                    continue;
                }
                lostAt = null;
                attempt = 0;
                if (tunThread is null)
                {
                    tunThread = new Thread(TunReadLoop) { IsBackground = true, Name = "tun-client" };
                    tunThread.Start();
                }
                var end = await RunTunnelAsync(conn, stop).ConfigureAwait(false);
                await conn.DisposeAsync().ConfigureAwait(false);
                switch (end)
                {
                    case TunnelEnd.UserDisconnect:
                        Log.Disconnected(log);
                        return ClientExitCode.Ok;
                    case TunnelEnd.PeerDisconnect:
                        throw new ClientException(ClientExitCode.SessionEnded, $"the server ended the session ({_serverEndReason})");
                    case TunnelEnd.BadFrame:
                        throw new ClientException(ClientExitCode.ProtocolError, "the server sent a malformed frame");
                    default:
                        Log.ConnectionLost(log, end.ToString());
                        break;
                }
            }
        }
        finally
        {
            _writer = null;
            _tun?.Dispose();
            tunThread?.Join(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>TLS + CONNECT; on the first call also creates and configures the TUN.</summary>
    private async Task<HttpsConnection> ConnectTunnelAsync(CancellationToken stop)
    {
        var conn = await HttpsConnection.OpenAsync(options, stop).ConfigureAwait(false);
        try
        {
            var headers = new List<KeyValuePair<string, string>>
            {
                new("User-Agent", options.UserAgent),
                new("Cookie", $"webvpn={_cookie}"),
                new("X-CSTP-Version", "1"),
                new("X-CSTP-Hostname", SafeHostName()),
                new("X-CSTP-Base-MTU", "1500"),
                new("X-CSTP-Address-Type", "IPv6,IPv4"),
                new("X-CSTP-Full-IPv6-Capability", "true"),
            };
            if (options.Extensions) headers.Add(new(IsotunExtensions.Header, "batch, gso"));
            if (_params is not null) headers.Add(new("X-CSTP-Address", _params.Address.ToString()));
            var (head, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", AuthClient.HostHeader(options.Server), headers, null, true, TimeSpan.FromSeconds(30), stop).ConfigureAwait(false);
            if (head.StatusCode == 401)
                throw new ClientException(ClientExitCode.SessionEnded, "the server rejected the session cookie (logged out or expired)");
            if (head.StatusCode != 200)
                throw new ClientException(head.StatusCode == 503 ? ClientExitCode.Failure : ClientExitCode.ProtocolError,
                    $"CONNECT refused: HTTP {head.StatusCode} {head.Headers.Get("X-Reason") ?? head.Reason}");
            var p = TunnelParameters.Parse(head);
            _accepted = options.Extensions ? IsotunExtensions.Parse(head.Headers.Get(IsotunExtensions.Header)) : IsotunExtension.None;
            if (_params is null)
            {
                ConfigureTun(p);
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
            }
            return conn;
        }
        catch
        {
            await conn.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void ConfigureTun(TunnelParameters p)
    {
        // Offloads whenever allowed: super-packets go whole to a server that negotiated GSO and are split for
        // one that did not; packets from the server are merged before the TUN write either way.
        _tun = TunDevice.Open(options.TunName, offload: options.Offload);
        var dev = _tun.Name;
        if (_tun.Offload) IpCommand.Run("link", "set", "dev", dev, "gso_max_size", TunDevice.GsoMaxSize.ToString());
        // No IPv6 link-local chatter: the tunnel carries only the leased address.
        IpCommand.TryRun("link", "set", "dev", dev, "addrgenmode", "none");
        IpCommand.Run("link", "set", "dev", dev, "mtu", p.Mtu.ToString(), "up");
        IpCommand.Run("addr", "replace", $"{p.Address}/32", "dev", dev);
        if (p.Address6 is not null) IpCommand.Run("-6", "addr", "replace", $"{p.Address6}/128", "dev", dev, "nodad");
        if (!options.ConfigureRoutes) return;
        // The tunnel's own network (gateway and, where allowed, other clients) is always reached through it.
        if (p.Netmask is not null && TunnelParameters.TryParseRoute($"{p.Address}/{p.Netmask}", out var own) && own.PrefixLength < 32)
            IpCommand.Run("-4", "route", "replace", own.ToString(), "dev", dev);
        if (p.SplitInclude.Count > 0)
        {
            foreach (var r in p.SplitInclude)
                IpCommand.Run(r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4", "route", "replace", r.ToString(), "dev", dev);
            return;
        }
        // No split-include means "everything": keep the server itself reachable over the underlay, then
        // take the two halves of the address space (more specific than, and not replacing, the default route).
        var server = Dns.GetHostAddresses(options.Server.IdnHost).First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
        var via = IpCommand.Run("-4", "route", "get", server.ToString()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var pin = new List<string> { "-4", "route", "replace", $"{server}/32" };
        for (int i = 0; i + 1 < via.Length; i++)
            if (via[i] is "via" or "dev") pin.AddRange([via[i], via[i + 1]]);
        IpCommand.Run([.. pin]);
        IpCommand.Run("-4", "route", "replace", "0.0.0.0/1", "dev", dev);
        IpCommand.Run("-4", "route", "replace", "128.0.0.0/1", "dev", dev);
    }

    private static string SafeHostName()
    {
        var h = Environment.MachineName;
        return h.Length > 0 && h.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.') ? h : "isotun";
    }

    /// <summary>TUN → server: a dedicated thread; packets are dropped (and counted) only while reconnecting.</summary>
    private void TunReadLoop()
    {
        var tun = _tun!;
        _enqueueWaiting = EnqueueWaiting;
        PacketBuffer? buf = null;
        while (true)
        {
            buf ??= PacketBuffer.Rent(tun.Offload ? PacketBuffer.Capacity : _params!.Mtu);
            int n;
            try { n = tun.Read(buf.PayloadSpace); }
            catch (TunException e) { Log.TunFailed(log, e.Message); break; }
            if (n < 0) break;
            if (n == 0) continue;
            TunFrames.Send(buf, n, tun.Offload, _peerGso, _params!.Mtu, _enqueueWaiting, out bool consumed);
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
    private bool EnqueueWaiting(PacketBuffer frame)
    {
        var w = _writer;
        while (w is not null && !w.TryEnqueue(frame))
        {
            if (!w.WaitForRoom(TimeSpan.FromSeconds(1))) w = _writer;
        }
        if (w is null) Interlocked.Increment(ref DroppedWhileReconnecting);
        return w is not null;
    }

    private enum TunnelEnd { PeerClosed, UserDisconnect, PeerDisconnect, BadFrame, DeadPeer }
}
