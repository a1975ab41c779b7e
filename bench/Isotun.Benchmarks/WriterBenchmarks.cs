using BenchmarkDotNet.Attributes;
using Isotun.Protocol.Cstp;
using Isotun.Transport;

namespace Isotun.Benchmarks;

/// <summary>
/// The writer loop of one connection, running as in production (own task, cancellable token) over a null stream.
/// Each op queues frames and waits until the writer has written them, so the writer goes back to waiting for the
/// queue every op: the light-load case, where a wake-up per packet is the norm.
/// </summary>
[MemoryDiagnoser]
public class WriterBenchmarks
{
    private FrameWriter _writer = null!;
    private CancellationTokenSource _cts = null!;
    private Task _run = null!;
    private long _expected;

    [Params(false, true)]
    public bool Batching { get; set; }

    /// <summary>Inline (GSO connections): the queuing thread runs the parked writer itself.</summary>
    [Params(false, true)]
    public bool Inline { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _cts = new CancellationTokenSource();
        _writer = new FrameWriter(Stream.Null, inline: Inline) { Batching = Batching };
        _run = Task.Run(() => _writer.RunAsync(_cts.Token));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer.Complete();
        _run.Wait(TimeSpan.FromSeconds(10));
        _cts.Dispose();
    }

    [Benchmark(Description = "FrameWriter: 1 frame per wake-up")]
    public long OneFrame() => Send(1);

    [Benchmark(Description = "FrameWriter: 16 frames per wake-up, per frame", OperationsPerInvoke = 16)]
    public long SixteenFrames() => Send(16);

    private long Send(int frames)
    {
        for (int i = 0; i < frames; i++)
        {
            var b = PacketBuffer.Rent();
            if (!_writer.TryEnqueue(b.Seal(CstpPacketType.Data, 1400))) b.Return();
        }
        _expected += frames;
        var spin = new SpinWait();
        while (Volatile.Read(ref _writer.FramesWritten) < _expected) spin.SpinOnce(sleep1Threshold: -1);
        return _expected;
    }
}
