using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;

namespace Isotun.Benchmarks;

/// <summary>Per-packet protocol work on both directions: CSTP header, IP parse and route key, MSS clamp.</summary>
[MemoryDiagnoser]
public class ProtocolBenchmarks
{
    private readonly byte[] _frame = new byte[CstpFrame.HeaderLength + 1400];
    private readonly byte[] _v4 = Packets.Segment(1, Packets.Mss, 1);
    private readonly byte[] _v6 = Packets.Ipv6Segment();
    private readonly byte[] _syn = Packets.Syn();
    private readonly byte[] _synWork = new byte[60];
    private readonly ConcurrentDictionary<IpKey, object> _routes = new();

    [GlobalSetup]
    public void Setup()
    {
        CstpFrame.WriteHeader(_frame, CstpPacketType.Data, 1400);
        // A tenant's route table with a few hundred sessions, as TenantRuntime keeps it.
        for (int i = 0; i < 250; i++) _routes[new IpKey(0xc6121500u + (uint)i, 4)] = new object();
        for (int i = 0; i < 250; i++) _routes[new IpKey(((UInt128)0x20010001 << 96) + (UInt128)(0x80 + i), 6)] = new object();
    }

    [Benchmark(Description = "CSTP header write")]
    public int CstpWriteHeader()
    {
        CstpFrame.WriteHeader(_frame, CstpPacketType.Data, 1400);
        return _frame[5];
    }

    [Benchmark(Description = "CSTP header parse")]
    public int CstpParseHeader() =>
        CstpFrame.TryParseHeader(_frame, CstpFrame.MaxPayloadLength, out var h) == CstpParseResult.Ok ? h.PayloadLength : -1;

    [Benchmark(Description = "IPv4 parse + IpKey + route lookup")]
    public bool RouteV4()
    {
        IpPacket.TryParse(_v4, out var info);
        return _routes.TryGetValue(IpKey.FromBytes(IpPacket.Destination(_v4, info)), out _);
    }

    [Benchmark(Description = "Flow hash + queue pick (4 queues)")]
    public int FlowPick()
    {
        IpPacket.TryParse(_v4, out var info);
        return FlowHash.Pick(FlowHash.Of(_v4, info), 4);
    }

    [Benchmark(Description = "IPv6 parse + IpKey + route lookup")]
    public bool RouteV6()
    {
        IpPacket.TryParse(_v6, out var info);
        return _routes.TryGetValue(IpKey.FromBytes(IpPacket.Destination(_v6, info)), out _);
    }

    [Benchmark(Description = "MssClamp, data segment (no-op)")]
    public bool ClampData() => MssClamp.TryClamp(_v4, MssClamp.MssForMtu(Packets.Mtu, 4));

    [Benchmark(Description = "MssClamp, SYN (copy + rewrite)")]
    public bool ClampSyn()
    {
        _syn.CopyTo(_synWork, 0);
        return MssClamp.TryClamp(_synWork, MssClamp.MssForMtu(Packets.Mtu, 4));
    }
}
