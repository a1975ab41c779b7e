using System.Buffers.Binary;
using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;

namespace Isotun.UnitTests.Protocol.Ip;

public class IcmpEchoTests
{
    private static readonly byte[] Payload = [1, 2, 3, 4, 5, 6, 7, 8, 9];

    private static byte[] Request(bool v6, ushort id = 0x1234, ushort seq = 7)
    {
        var buffer = new byte[64];
        int n = IcmpEcho.WriteRequest(buffer, v6, id, seq, Payload);
        return buffer[..n];
    }

    /// <summary>An IPv4 packet (20-byte header, protocol 1) around <paramref name="icmp"/>, as a raw socket returns it.</summary>
    private static byte[] InIpv4(byte[] icmp)
    {
        var packet = new byte[20 + icmp.Length];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 1;
        icmp.CopyTo(packet, 20);
        return packet;
    }

    private static byte[] Reply(byte[] request, bool v6)
    {
        var reply = (byte[])request.Clone();
        reply[0] = v6 ? (byte)129 : (byte)0;
        return reply;
    }

    [Fact]
    public void An_ipv4_request_carries_a_valid_checksum_and_our_identifier()
    {
        var request = Request(v6: false);
        Assert.Equal(8, request[0]);
        Assert.Equal(IcmpEcho.HeaderLength + Payload.Length, request.Length);
        Assert.Equal(0, Checksum.Of(request)); // a correct checksum sums the message to zero
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(4)));
        Assert.Equal(7, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(6)));
    }

    [Fact]
    public void An_ipv6_request_leaves_the_checksum_to_the_kernel()
    {
        var request = Request(v6: true);
        Assert.Equal(128, request[0]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(2)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Our_reply_is_read_with_its_sequence(bool v6)
    {
        var reply = Reply(Request(v6), v6);
        var message = v6 ? reply : InIpv4(reply);
        Assert.Equal(IcmpEchoOutcome.Reply, IcmpEcho.TryRead(message, v6, 0x1234, out ushort seq, out _, out _));
        Assert.Equal(7, seq);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Someone_elses_reply_or_our_own_request_is_not_ours(bool v6)
    {
        var other = Reply(Request(v6, id: 0x9999), v6);
        Assert.Equal(IcmpEchoOutcome.NotOurs, IcmpEcho.TryRead(v6 ? other : InIpv4(other), v6, 0x1234, out _, out _, out _));
        var ownRequest = Request(v6);
        Assert.Equal(IcmpEchoOutcome.NotOurs, IcmpEcho.TryRead(v6 ? ownRequest : InIpv4(ownRequest), v6, 0x1234, out _, out _, out _));
    }

    [Fact]
    public void An_ipv4_unreachable_that_quotes_our_request_is_our_error()
    {
        var quotedIp = InIpv4(Request(v6: false));
        var error = new byte[8 + quotedIp.Length];
        error[0] = 3; // destination unreachable
        error[1] = 1; // host
        quotedIp.CopyTo(error, 8);
        Assert.Equal(IcmpEchoOutcome.Error, IcmpEcho.TryRead(InIpv4(error), false, 0x1234, out ushort seq, out byte type, out byte code));
        Assert.Equal(7, seq);
        Assert.Equal("Destination Host Unreachable", IcmpEcho.DescribeError(false, type, code));
        Assert.Equal(IcmpEchoOutcome.NotOurs, IcmpEcho.TryRead(InIpv4(error), false, 0x4321, out _, out _, out _));
    }

    [Fact]
    public void An_ipv6_unreachable_that_quotes_our_request_is_our_error()
    {
        var request = Request(v6: true);
        var quoted = new byte[40 + request.Length];
        quoted[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(4), (ushort)request.Length);
        quoted[6] = 58;
        request.CopyTo(quoted, 40);
        var error = new byte[8 + quoted.Length];
        error[0] = 1;
        error[1] = 3;
        quoted.CopyTo(error, 8);
        Assert.Equal(IcmpEchoOutcome.Error, IcmpEcho.TryRead(error, true, 0x1234, out ushort seq, out byte type, out byte code));
        Assert.Equal(7, seq);
        Assert.Equal("Destination unreachable: Address unreachable", IcmpEcho.DescribeError(true, type, code));
    }

    [Fact]
    public void A_whole_ipv4_request_parses_and_its_reply_reads_as_ours()
    {
        var packet = new byte[100];
        var source = System.Net.IPAddress.Parse("10.206.0.2");
        var target = System.Net.IPAddress.Parse("10.206.0.1");
        int n = IcmpEcho.WriteIpv4Request(packet, source, target, 0x1234, 7, Payload);
        Assert.Equal(20 + IcmpEcho.HeaderLength + Payload.Length, n);
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(packet.AsSpan(0, n), out var info));
        Assert.Equal((4, 20, n, (byte)1), (info.Version, info.HeaderLength, info.TotalLength, info.Protocol));
        Assert.Equal(0, Checksum.Of(packet.AsSpan(0, 20))); // the header's checksum
        Assert.Equal(0, Checksum.Of(packet.AsSpan(20, n - 20))); // the message's
        Assert.Equal(source, new System.Net.IPAddress(packet.AsSpan(12, 4)));
        Assert.Equal(target, new System.Net.IPAddress(packet.AsSpan(16, 4)));
        Assert.Equal(Payload, packet[(20 + IcmpEcho.HeaderLength)..n]);

        // The kernel's answer: addresses swapped, type 0; the request itself is not a reply.
        Assert.Equal(IcmpEchoOutcome.NotOurs, IcmpEcho.TryRead(packet.AsSpan(0, n), false, 0x1234, out _, out _, out _));
        var reply = Reply(packet[20..n], v6: false);
        Assert.Equal(IcmpEchoOutcome.Reply, IcmpEcho.TryRead(InIpv4(reply), false, 0x1234, out ushort seq, out _, out _));
        Assert.Equal(7, seq);
    }

    [Fact]
    public void A_whole_ipv4_request_wants_room_and_ipv4_addresses()
    {
        var v4 = System.Net.IPAddress.Loopback;
        Assert.Throws<ArgumentException>(() => IcmpEcho.WriteIpv4Request(new byte[20 + IcmpEcho.HeaderLength + Payload.Length - 1], v4, v4, 1, 1, Payload));
        Assert.Throws<ArgumentException>(() => IcmpEcho.WriteIpv4Request(new byte[100], System.Net.IPAddress.IPv6Loopback, v4, 1, 1, Payload));
    }

    [Fact]
    public void Truncated_and_hostile_messages_never_throw()
    {
        var rng = new Random(11);
        var reply = InIpv4(Reply(Request(false), false));
        for (int len = 0; len < reply.Length; len++)
            Assert.NotEqual(IcmpEchoOutcome.Reply, IcmpEcho.TryRead(reply.AsSpan(0, len), false, 0x1234, out _, out _, out _));
        var buffer = new byte[200];
        for (int i = 0; i < 20000; i++)
        {
            rng.NextBytes(buffer);
            int len = rng.Next(buffer.Length);
            if (rng.Next(2) == 0) buffer[0] = 0x45;
            IcmpEcho.TryRead(buffer.AsSpan(0, len), rng.Next(2) == 0, 0x1234, out _, out _, out _);
        }
    }
}
