using System.Buffers.Binary;
using System.Net;
using Isotun.Protocol.Ip;

namespace Isotun.UnitTests.Protocol.Ip;

/// <summary>Queue choice by flow: stable within a flow and both its directions, spread across flows, bounded.</summary>
public class FlowHashTests
{
    private static byte[] Packet(string src, string dst, byte protocol, ushort sport, ushort dport, ushort fragment = 0x4000, int payload = 20)
    {
        var s = IPAddress.Parse(src);
        var d = IPAddress.Parse(dst);
        bool v6 = s.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        int header = v6 ? 40 : 20;
        var p = new byte[header + payload];
        if (v6)
        {
            p[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), (ushort)payload);
            p[6] = protocol;
            s.TryWriteBytes(p.AsSpan(8), out _);
            d.TryWriteBytes(p.AsSpan(24), out _);
        }
        else
        {
            p[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(6), fragment);
            p[9] = protocol;
            s.TryWriteBytes(p.AsSpan(12), out _);
            d.TryWriteBytes(p.AsSpan(16), out _);
        }
        // Payload bytes beyond the ports must not matter.
        for (int i = header; i < p.Length; i++) p[i] = (byte)Random.Shared.Next();
        if (payload < 4) return p;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(header), sport);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(header + 2), dport);
        return p;
    }

    private static uint Hash(byte[] p)
    {
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(p, out var info));
        return FlowHash.Of(p, info);
    }

    [Theory]
    [InlineData("10.10.0.2", "198.18.21.2")]
    [InlineData("fd00:10::2", "fd00:21::80")]
    public void One_flow_hashes_alike_in_both_directions_whatever_the_payload(string a, string b)
    {
        uint h = Hash(Packet(a, b, 6, 40000, 443));
        Assert.Equal(h, Hash(Packet(a, b, 6, 40000, 443)));
        Assert.Equal(h, Hash(Packet(b, a, 6, 443, 40000)));
    }

    [Fact]
    public void Flows_differing_only_in_port_or_protocol_spread_over_the_queues()
    {
        var perQueue = new int[4];
        for (ushort port = 40000; port < 40400; port++)
            perQueue[FlowHash.Pick(Hash(Packet("10.10.0.2", "198.18.21.2", 6, port, 5201)), 4)]++;
        // 400 flows over 4 queues: each gets a fair share (100 expected), none is starved.
        Assert.All(perQueue, n => Assert.InRange(n, 60, 140));
        Assert.NotEqual(Hash(Packet("10.10.0.2", "198.18.21.2", 6, 1, 2)), Hash(Packet("10.10.0.2", "198.18.21.2", 17, 1, 2)));
    }

    [Fact]
    public void Ipv4_fragments_ignore_ports_so_every_fragment_of_a_datagram_takes_one_queue()
    {
        // A later fragment's first bytes are payload, not ports: only addresses and protocol may count.
        uint first = Hash(Packet("10.10.0.2", "198.18.21.2", 17, 1000, 2000, fragment: 0x2000));
        uint later = Hash(Packet("10.10.0.2", "198.18.21.2", 17, 7777, 9999, fragment: 0x00b9));
        Assert.Equal(first, later);
    }

    [Fact]
    public void Icmp_and_short_transport_headers_hash_by_addresses_only()
    {
        Assert.Equal(Hash(Packet("10.10.0.2", "198.18.21.2", 1, 1, 2)), Hash(Packet("10.10.0.2", "198.18.21.2", 1, 3, 4)));
        // UDP packets cut before their ports are hashed by addresses (whatever their two bytes), never read past their end.
        Assert.Equal(Hash(Packet("10.10.0.2", "198.18.21.2", 17, 0, 0, payload: 2)), Hash(Packet("10.10.0.2", "198.18.21.2", 17, 0, 0, payload: 2)));
    }

    [Theory]
    [InlineData(0u, 3, 0)]
    [InlineData(uint.MaxValue, 3, 2)]
    [InlineData(0x80000000u, 2, 1)]
    [InlineData(0x7fffffffu, 2, 0)]
    [InlineData(12345u, 1, 0)]
    public void Pick_stays_in_range(uint hash, int count, int expected) => Assert.Equal(expected, FlowHash.Pick(hash, count));
}
