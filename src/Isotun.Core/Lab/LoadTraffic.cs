using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Isotun.Client;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Transport;

namespace Isotun.Lab;

/// <summary>
/// Data both ways through the server's TUN, for a soak: each of the load client's sessions sends ICMP echo requests in
/// DATA frames to its tenant's gateway (the server's TUN address, so the kernel behind that TUN answers), reads the
/// replies, answers the server's DPD requests, and the run says where it stands once a minute. With no packet rate a
/// session only answers DPD and sends keepalives, so it stays up for as long as the run.
/// </summary>
public sealed class LoadTraffic
{
    /// <summary>An IPv4 header, the ICMP header and the send time this client puts first in the echo's payload.</summary>
    public const int MinPacketBytes = 20 + IcmpEcho.HeaderLength + sizeof(long);

    /// <summary>Echo packets go in small pooled buffers.</summary>
    public const int MaxPacketBytes = PacketBuffer.SmallPayload;

    private static readonly TimeSpan Report = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Linger = TimeSpan.FromSeconds(2); // replies still on their way when sending stops

    private readonly int _packetsPerSecond, _packetBytes;
    private long _sent, _received, _timed, _rttTicks, _maxRttTicks, _notSent;
    private int _ended;
    private string? _lastEnd;

    public LoadTraffic(int packetsPerSecond, int packetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(packetsPerSecond);
        ArgumentOutOfRangeException.ThrowIfLessThan(packetBytes, MinPacketBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(packetBytes, MaxPacketBytes);
        (_packetsPerSecond, _packetBytes) = (packetsPerSecond, packetBytes);
    }

    /// <summary>
    /// The tenant's gateway: the first address of the client's tunnel network (X-CSTP-Address and X-CSTP-Netmask), which
    /// an Isotun server gives its TUN. Null without a netmask, or for a /31 or /32.
    /// </summary>
    public static IPAddress? GatewayOf(TunnelParameters tunnel)
    {
        if (tunnel.Netmask is not { } mask || tunnel.Address.AddressFamily != AddressFamily.InterNetwork || mask.AddressFamily != AddressFamily.InterNetwork) return null;
        Span<byte> a = stackalloc byte[4], m = stackalloc byte[4];
        tunnel.Address.TryWriteBytes(a, out _);
        mask.TryWriteBytes(m, out _);
        uint bits = BinaryPrimitives.ReadUInt32BigEndian(m);
        if (~bits < 3) return null;
        BinaryPrimitives.WriteUInt32BigEndian(a, (BinaryPrimitives.ReadUInt32BigEndian(a) & bits) + 1);
        var gateway = new IPAddress(a);
        return gateway.Equals(tunnel.Address) ? null : gateway;
    }

    /// <summary>Runs every session for <paramref name="hold"/>; returns how many of them the server ended before that (all, when none can send).</summary>
    public async Task<int> RunAsync(IReadOnlyList<(HttpsConnection Connection, TunnelParameters Tunnel)> sessions, TimeSpan hold, Action<string> say, CancellationToken ct)
    {
        if (_packetsPerSecond > 0 && sessions.FirstOrDefault(s => GatewayOf(s.Tunnel) is null || s.Tunnel.Mtu < _packetBytes) is { Tunnel: { } bad })
        {
            say(GatewayOf(bad) is null
                ? $"traffic: no gateway to send echoes to (address {bad.Address}, netmask {bad.Netmask?.ToString() ?? "none"})"
                : $"traffic: packets of {_packetBytes} bytes do not fit the tunnel's MTU of {bad.Mtu}");
            return sessions.Count;
        }
        var clock = Stopwatch.StartNew();
        using var stopSending = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stopSending.CancelAfter(hold);
        var all = Task.WhenAll(sessions.Select((s, i) => RunSessionAsync(s.Connection, s.Tunnel, (ushort)(i + 1), stopSending.Token, ct)));
        while (await Task.WhenAny(all, Task.Delay(Report, ct)).ConfigureAwait(false) != all && !ct.IsCancellationRequested)
            say(Line($"traffic t={clock.Elapsed.TotalSeconds:0}s:", sessions.Count));
        await all.ConfigureAwait(false);
        say(Line($"traffic: {sessions.Count} sessions, {_packetsPerSecond} packets/s each of {_packetBytes} bytes, {clock.Elapsed.TotalSeconds:0} s:", sessions.Count));
        return _ended;
    }

    private string Line(string head, int sessions)
    {
        long timed = Interlocked.Read(ref _timed);
        double avg = timed == 0 ? 0 : Interlocked.Read(ref _rttTicks) * 1000.0 / Stopwatch.Frequency / timed;
        double max = Interlocked.Read(ref _maxRttTicks) * 1000.0 / Stopwatch.Frequency;
        int ended = Volatile.Read(ref _ended);
        return string.Create(CultureInfo.InvariantCulture,
            $"{head} echo requests sent={Interlocked.Read(ref _sent)} replies={Interlocked.Read(ref _received)} not-sent={Interlocked.Read(ref _notSent)} rtt avg={avg:0.000} ms max={max:0.0} ms sessions={sessions - ended} ended-by-server={ended}{(_lastEnd is { } why ? $" ({why})" : "")}");
    }

    private async Task RunSessionAsync(HttpsConnection conn, TunnelParameters tunnel, ushort id, CancellationToken stopSending, CancellationToken ct)
    {
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sendingCts = CancellationTokenSource.CreateLinkedTokenSource(stopSending);
        using var linger = stopSending.Register(static r => ((CancellationTokenSource)r!).CancelAfter(Linger), reading);
        var writer = new FrameWriter(conn.Stream);
        var writing = writer.RunAsync(reading.Token);
        var sending = SendLoopAsync(writer, tunnel, id, sendingCts.Token);
        string? end = null;
        try
        {
            end = await ReadLoopAsync(conn, writer, id, reading.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException e)
        {
            end = "connection lost: " + e.Message;
        }
        if (end is not null && !stopSending.IsCancellationRequested)
        {
            Interlocked.Increment(ref _ended);
            _lastEnd = end;
        }
        await sendingCts.CancelAsync().ConfigureAwait(false);
        await reading.CancelAsync().ConfigureAwait(false);
        try { await sending.ConfigureAwait(false); } catch (OperationCanceledException) { }
        try { await writing.ConfigureAwait(false); } catch (Exception e) when (e is OperationCanceledException or IOException) { }
    }

    /// <summary>Echo requests at the session's rate, the first at a random point of the first period so sessions spread out; keepalives when there is no rate.</summary>
    private async Task SendLoopAsync(FrameWriter writer, TunnelParameters tunnel, ushort id, CancellationToken ct)
    {
        var gateway = GatewayOf(tunnel);
        bool echo = _packetsPerSecond > 0;
        var period = echo ? TimeSpan.FromSeconds(1.0 / _packetsPerSecond) : TimeSpan.FromSeconds(Math.Max(1, tunnel.Keepalive));
        await Task.Delay(TimeSpan.FromTicks(Random.Shared.NextInt64(period.Ticks)), ct).ConfigureAwait(false);
        using var timer = new PeriodicTimer(period);
        ushort seq = 0;
        byte[] payload = new byte[_packetBytes - 20 - IcmpEcho.HeaderLength];
        do
        {
            PacketBuffer frame;
            if (echo)
            {
                BinaryPrimitives.WriteInt64LittleEndian(payload, Stopwatch.GetTimestamp());
                frame = PacketBuffer.Rent();
                frame.Seal(CstpPacketType.Data, IcmpEcho.WriteIpv4Request(frame.PayloadSpace, tunnel.Address, gateway!, id, seq++, payload));
            }
            else
            {
                frame = PacketBuffer.Control(CstpPacketType.Keepalive, ReadOnlySpan<byte>.Empty);
            }
            if (!writer.TryEnqueue(frame))
            {
                frame.Return();
                Interlocked.Increment(ref _notSent);
            }
            else if (echo)
            {
                Interlocked.Increment(ref _sent);
            }
        }
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
    }

    /// <summary>Reads until the server ends the tunnel (returns why) or the run ends (cancelled).</summary>
    private async Task<string> ReadLoopAsync(HttpsConnection conn, FrameWriter writer, ushort id, CancellationToken ct)
    {
        while (true)
        {
            var frame = await conn.Reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, ct).ConfigureAwait(false);
            if (frame.Status == FrameReadStatus.EndOfStream) return "the server closed the connection";
            if (frame.Status == FrameReadStatus.BadFrame) return "bad frame: " + frame.Parse;
            switch (frame.Type)
            {
                case CstpPacketType.Data:
                    CountReply(frame.Payload.Span, id);
                    break;
                case CstpPacketType.DpdRequest:
                    await writer.EnqueueAsync(PacketBuffer.Control(CstpPacketType.DpdResponse, frame.Payload.Span), ct).ConfigureAwait(false);
                    break;
                case CstpPacketType.Disconnect:
                case CstpPacketType.Terminate:
                    return "the server ended the tunnel";
            }
        }
    }

    private void CountReply(ReadOnlySpan<byte> packet, ushort id)
    {
        if (IcmpEcho.TryRead(packet, ipv6: false, id, out _, out _, out _) != IcmpEchoOutcome.Reply) return;
        Interlocked.Increment(ref _received);
        if (!TryReadSendTime(packet, out long sent)) return;
        long rtt = Stopwatch.GetTimestamp() - sent;
        if (rtt < 0 || rtt > Stopwatch.Frequency * 60) return; // not a time this client wrote
        Interlocked.Increment(ref _timed);
        Interlocked.Add(ref _rttTicks, rtt);
        long max;
        while (rtt > (max = Interlocked.Read(ref _maxRttTicks)) && Interlocked.CompareExchange(ref _maxRttTicks, rtt, max) != max) { }
    }

    /// <summary>The send time at the start of an echo's payload, in an IPv4 packet <see cref="IcmpEcho.TryRead"/> accepted.</summary>
    internal static bool TryReadSendTime(ReadOnlySpan<byte> packet, out long timestamp)
    {
        timestamp = 0;
        if (packet.IsEmpty) return false;
        int at = (packet[0] & 0x0F) * 4 + IcmpEcho.HeaderLength;
        if (packet.Length < at + sizeof(long)) return false;
        timestamp = BinaryPrimitives.ReadInt64LittleEndian(packet[at..]);
        return true;
    }
}
