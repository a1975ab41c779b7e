using Isotun.Protocol.Cstp;
using Isotun.Transport;

namespace Isotun.Client;

public sealed partial class VpnClient
{
    private async Task<TunnelEnd> RunTunnelAsync(HttpsConnection conn, CancellationToken stop)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var writer = new FrameWriter(conn.Stream);
        var writerTask = writer.RunAsync(cts.Token);
        Volatile.Write(ref _lastRxTicks, Environment.TickCount64);
        Volatile.Write(ref _lastTxTicks, Environment.TickCount64);
        _writer = writer;
        var timers = TimersAsync(writer, cts);
        TunnelEnd end;
        try
        {
            end = await ReadLoopAsync(conn, writer, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Ctrl-C / SIGTERM: say goodbye so the server invalidates the cookie (openconnect sends the same).
            _writer = null;
            writer.Complete();
            try { await writerTask.ConfigureAwait(false); } catch (Exception) { }
            await SendByeAsync(conn).ConfigureAwait(false);
            end = TunnelEnd.UserDisconnect;
        }
        catch (OperationCanceledException)
        {
            end = TunnelEnd.DeadPeer;
        }
        catch (IOException)
        {
            end = TunnelEnd.PeerClosed;
        }
        _writer = null;
        writer.Complete();
        cts.Cancel();
        try { await writerTask.ConfigureAwait(false); } catch (Exception) { }
        try { await timers.ConfigureAwait(false); } catch (OperationCanceledException) { }
        return end;
    }

    private async Task<TunnelEnd> ReadLoopAsync(HttpsConnection conn, FrameWriter writer, CancellationToken ct)
    {
        var tun = _tun!;
        while (true)
        {
            var frame = await conn.Reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, ct).ConfigureAwait(false);
            if (frame.Status == FrameReadStatus.EndOfStream) return TunnelEnd.PeerClosed;
            if (frame.Status == FrameReadStatus.BadFrame)
            {
                Log.BadFrame(log, frame.Parse.ToString());
                return TunnelEnd.BadFrame;
            }
            Volatile.Write(ref _lastRxTicks, Environment.TickCount64);
            switch (frame.Type)
            {
                case CstpPacketType.Data:
                    if (frame.Payload.Length > 0) tun.Write(frame.Payload.Span);
                    break;
                case CstpPacketType.DpdRequest:
                    await writer.EnqueueAsync(PacketBuffer.Control(CstpPacketType.DpdResponse, frame.Payload.Span), ct).ConfigureAwait(false);
                    break;
                case CstpPacketType.Disconnect:
                case CstpPacketType.Terminate:
                    Log.ServerEnded(log, frame.Payload.Length > 1 ? System.Text.Encoding.UTF8.GetString(frame.Payload.Span[1..Math.Min(frame.Payload.Length, 200)]) : frame.Type.ToString());
                    return TunnelEnd.PeerDisconnect;
                case CstpPacketType.Compressed:
                    return TunnelEnd.BadFrame;
            }
        }
    }

    /// <summary>DPD: probe after DPD seconds of silence, give up after twice that. Keepalive after idle tx.</summary>
    private async Task TimersAsync(FrameWriter writer, CancellationTokenSource cts)
    {
        var p = _params!;
        long dpdMs = p.Dpd * 1000L, kaMs = p.Keepalive * 1000L;
        long lastProbe = 0;
        while (!cts.IsCancellationRequested)
        {
            await Task.Delay(500, cts.Token).ConfigureAwait(false);
            long now = Environment.TickCount64;
            long silent = now - Volatile.Read(ref _lastRxTicks);
            if (silent >= 2 * dpdMs)
            {
                Log.DeadPeer(log, silent / 1000);
                cts.Cancel();
                return;
            }
            if (silent >= dpdMs && now - lastProbe >= dpdMs / 2)
            {
                lastProbe = now;
                var probe = PacketBuffer.Control(CstpPacketType.DpdRequest, ReadOnlySpan<byte>.Empty);
                if (!writer.TryEnqueue(probe)) probe.Return();
            }
            if (now - Volatile.Read(ref _lastTxTicks) >= kaMs)
            {
                Volatile.Write(ref _lastTxTicks, now);
                var ka = PacketBuffer.Control(CstpPacketType.Keepalive, ReadOnlySpan<byte>.Empty);
                if (!writer.TryEnqueue(ka)) ka.Return();
            }
        }
    }

    private static async Task SendByeAsync(HttpsConnection conn)
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
        }
        catch (Exception) { }
    }
}
