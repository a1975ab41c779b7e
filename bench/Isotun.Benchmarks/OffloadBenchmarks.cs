using BenchmarkDotNet.Attributes;
using Isotun.Protocol.Offload;

namespace Isotun.Benchmarks;

/// <summary>GSO and GRO: validating a peer's super-packet, splitting one for a stock peer, merging a run of segments.</summary>
[MemoryDiagnoser]
public class OffloadBenchmarks
{
    private const int RunLength = 44; // 44 × 1348 + 52 ≈ 59 KiB, a typical TSO burst
    private byte[] _super = [];
    private VirtioNetHeader _header;
    private byte[][] _run = [];
    private readonly byte[] _segment = new byte[2048];
    private readonly TcpCoalescer _gro = new();
    private byte[] _udp = [];
    private VirtioNetHeader _udpHeader;

    [GlobalSetup]
    public void Setup()
    {
        var framed = Packets.SuperPacket(RunLength);
        _header = VirtioNetHeader.Read(framed);
        _super = framed[VirtioNetHeader.Length..];
        _run = Packets.Run(RunLength);
        if (GsoPacket.Validate(ref _header, _super, Packets.Mtu) != GsoCheckResult.Ok) throw new InvalidOperationException("bad super-packet");
        var udp = Packets.UdpSuperPacket(40);
        _udpHeader = VirtioNetHeader.Read(udp);
        _udp = udp[VirtioNetHeader.Length..];
        if (GsoPacket.Validate(ref _udpHeader, _udp, Packets.Mtu, allowUdp: true) != GsoCheckResult.Ok) throw new InvalidOperationException("bad UDP super-packet");
    }

    [Benchmark(Description = "GsoPacket.Validate, 59 KiB super-packet")]
    public GsoCheckResult Validate()
    {
        var h = _header;
        return GsoPacket.Validate(ref h, _super, Packets.Mtu);
    }

    [Benchmark(Description = "GsoPacket split, per segment (44 per op)", OperationsPerInvoke = RunLength)]
    public int Split()
    {
        int total = 0, count = GsoPacket.SegmentCount(_header, _super.Length);
        for (int i = 0; i < count; i++) total += GsoPacket.WriteSegment(_super, _header, i, _segment);
        return total;
    }

    [Benchmark(Description = "GsoPacket UDP (USO) cut, per datagram (40 per op)", OperationsPerInvoke = 40)]
    public int SplitUdp()
    {
        int total = 0, count = GsoPacket.SegmentCount(_udpHeader, _udp.Length);
        for (int i = 0; i < count; i++) total += GsoPacket.WriteSegment(_udp, _udpHeader, i, _segment);
        return total;
    }

    [Benchmark(Description = "TcpCoalescer append + flush, per segment (44 per op)", OperationsPerInvoke = RunLength)]
    public int Coalesce()
    {
        _gro.TryStart(_run[0]);
        for (int i = 1; i < _run.Length; i++) _gro.TryAppend(_run[i]);
        return _gro.Flush().Length;
    }
}
