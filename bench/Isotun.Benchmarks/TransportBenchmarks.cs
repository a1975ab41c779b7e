using System.Reflection;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;
using Isotun.Transport;

namespace Isotun.Benchmarks;

/// <summary>
/// The per-packet transport path: pooled buffers, TUN → peer framing into a connection's queue (drained here the
/// way the writer drains it), frames parsed from a buffered stream, and the writer loop waking up per frame.
/// </summary>
[MemoryDiagnoser]
public class TransportBenchmarks
{
    private const int Burst = 64;
    private byte[] _plain = [];
    private byte[] _super = [];
    private FrameWriter _queueOnly = null!;
    private ChannelReader<PacketBuffer> _drain = null!;
    private Func<PacketBuffer, EnqueueResult> _enqueue = null!;
    private ConnectionReader _burstReader = null!;
    private ConnectionReader _pendingReader = null!;
    private readonly Isotun.Server.FlowSteering _steering = new();
    private Isotun.Server.Downlink[] _links = [];
    private long _tick;

    [GlobalSetup]
    public void Setup()
    {
        _plain = Packets.Segment(1, Packets.Mss, 1);
        _super = Packets.SuperPacket(44);
        // A connection's queue with nobody writing: each benchmark drains it itself, so only the framing and the
        // queue operations are measured (the writer loop has its own benchmarks below).
        _queueOnly = new FrameWriter(Stream.Null, queueDepth: 1024);
        _drain = ((Channel<PacketBuffer>)typeof(FrameWriter).GetField("_queue", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(_queueOnly)!).Reader;
        _enqueue = _queueOnly.Offer;

        var frame = new byte[CstpFrame.HeaderLength + 1400];
        CstpFrame.Write(frame, CstpPacketType.Data, _plain.AsSpan(0, 1400));
        _burstReader = new ConnectionReader(new RepeatingStream(frame));
        _pendingReader = new ConnectionReader(new PendingStream(frame));
        _links = [.. Enumerable.Range(0, 4).Select(q => new Isotun.Server.Downlink(q, 1400, true, true, new FrameWriter(Stream.Null)))];
    }

    /// <summary>A packet of a flow in a burst (it keeps its connection), and every 64th one a flow placed anew.</summary>
    [Benchmark(Description = "Flow steering pick, 4 connections")]
    public int SteeringPick()
    {
        long now = ++_tick >> 6; // a millisecond per 64 packets
        uint flow = (_tick & 63) == 0 ? (uint)_tick * 0x9e3779b9 : 0x12345678;
        return _steering.Pick(flow, 1400, _links, now);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _burstReader.Dispose();
        _pendingReader.Dispose();
    }

    [Benchmark(Description = "PacketBuffer rent + return (2 KiB)")]
    public int RentSmall()
    {
        var b = PacketBuffer.Rent();
        int n = b.Array.Length;
        b.Return();
        return n;
    }

    [Benchmark(Description = "PacketBuffer rent + return (64 KiB)")]
    public int RentLarge()
    {
        var b = PacketBuffer.Rent(PacketBuffer.Capacity);
        int n = b.Array.Length;
        b.Return();
        return n;
    }

    [Benchmark(Description = "TunFrames.Send plain packet → queue → drained")]
    public int SendPlain()
    {
        var b = PacketBuffer.Rent(Packets.Mtu);
        _plain.CopyTo(b.PayloadSpace); // the TUN read
        TunFrames.Send(b, _plain.Length, tunOffload: false, peerGso: false, peerUso: false, Packets.Mtu, _enqueue, out bool consumed);
        if (!consumed) b.Return();
        return Drain();
    }

    [Benchmark(Description = "TunFrames.Send 59 KiB super-packet → GSO peer → drained")]
    public int SendSuperToGsoPeer()
    {
        var b = PacketBuffer.Rent(PacketBuffer.Capacity);
        _super.CopyTo(b.PayloadSpace);
        TunFrames.Send(b, _super.Length, tunOffload: true, peerGso: true, peerUso: false, Packets.Mtu, _enqueue, out bool consumed);
        if (!consumed) b.Return();
        return Drain();
    }

    [Benchmark(Description = "TunFrames.Send 59 KiB super-packet → stock peer (44 segments) → drained, per segment", OperationsPerInvoke = 44)]
    public int SendSuperToStockPeer()
    {
        var b = PacketBuffer.Rent(PacketBuffer.Capacity);
        _super.CopyTo(b.PayloadSpace);
        TunFrames.Send(b, _super.Length, tunOffload: true, peerGso: false, peerUso: false, Packets.Mtu, _enqueue, out bool consumed);
        if (!consumed) b.Return();
        return Drain();
    }

    [Benchmark(Description = "ConnectionReader, 64 buffered frames, per frame", OperationsPerInvoke = Burst)]
    public int ReadBurst()
    {
        int total = 0;
        for (int i = 0; i < Burst; i++)
        {
            var vt = _burstReader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
            if (!vt.IsCompleted) throw new InvalidOperationException("the stream completes synchronously");
            total += vt.Result.Payload.Length;
        }
        return total;
    }

    [Benchmark(Description = "ConnectionReader, one frame per (asynchronous) read")]
    public int ReadPending()
    {
        var vt = _pendingReader.ReadFrameAsync(CstpFrame.MaxPayloadLength, default);
        if (!vt.IsCompleted) throw new InvalidOperationException("the stream completes inline");
        return vt.GetAwaiter().GetResult().Payload.Length;
    }

    private int Drain()
    {
        int n = 0;
        while (_drain.TryRead(out var f))
        {
            n += f.FrameLength;
            f.Return();
        }
        return n;
    }
}
