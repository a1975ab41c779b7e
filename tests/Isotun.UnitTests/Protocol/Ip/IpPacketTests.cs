using System.Net;
using Isotun.Protocol.Ip;

namespace Isotun.UnitTests.Protocol.Ip;

public class IpPacketTests
{
    [Fact]
    public void Parses_ipv4()
    {
        var packet = PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460), payloadLength: 10);
        byte[] withTrailer = [.. packet, 0xaa, 0xbb];

        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(withTrailer, out var info));
        Assert.Equal(new IpPacketInfo(4, 20, packet.Length, 6), info);
        Assert.Equal(PacketBuilder.V4Source.GetAddressBytes(), IpPacket.Source(withTrailer, info).ToArray());
        Assert.Equal(PacketBuilder.V4Destination.GetAddressBytes(), IpPacket.Destination(withTrailer, info).ToArray());
    }

    [Fact]
    public void Parses_ipv4_with_options()
    {
        var packet = PacketBuilder.Ipv4Tcp([], ipOptionsLength: 8);
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(packet, out var info));
        Assert.Equal(28, info.HeaderLength);
        Assert.Equal(PacketBuilder.V4Source.GetAddressBytes(), IpPacket.Source(packet, info).ToArray());
    }

    [Fact]
    public void Parses_ipv6()
    {
        var packet = PacketBuilder.Ipv6Tcp(PacketBuilder.LinuxSynOptions(1440));
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(packet, out var info));
        Assert.Equal(new IpPacketInfo(6, 40, packet.Length, 6), info);
        Assert.Equal(PacketBuilder.V6Source.GetAddressBytes(), IpPacket.Source(packet, info).ToArray());
        Assert.Equal(PacketBuilder.V6Destination.GetAddressBytes(), IpPacket.Destination(packet, info).ToArray());
    }

    public static TheoryData<byte[], IpParseResult> Vectors()
    {
        var v4 = PacketBuilder.Ipv4Tcp([]);
        var v6 = PacketBuilder.Ipv6Tcp([]);
        var data = new TheoryData<byte[], IpParseResult>
        {
            { [], IpParseResult.TooShort },
            { [0x45], IpParseResult.TooShort },
            { v4[..19], IpParseResult.TooShort },
            { v6[..39], IpParseResult.TooShort },
            { v4[..^1], IpParseResult.BadTotalLength },
            { v6[..^1], IpParseResult.BadTotalLength },
            { With(v4, 0, 0x55), IpParseResult.BadVersion },
            { With(v4, 0, 0x05), IpParseResult.BadVersion },
            { With(v4, 0, 0xf5), IpParseResult.BadVersion },
            { With(v4, 0, 0x44), IpParseResult.BadHeaderLength },
            { With(v4, 0, 0x40), IpParseResult.BadHeaderLength },
            { With(v4, 0, 0x4f), IpParseResult.TooShort },
            { With(With(v4, 2, 0x00), 3, 0x13), IpParseResult.BadTotalLength },
            { With(With(v4, 2, 0xff), 3, 0xff), IpParseResult.BadTotalLength },
            { With(With(v6, 4, 0xff), 5, 0xff), IpParseResult.BadTotalLength },
            { With(With(v4, 2, 0x00), 3, 0x14), IpParseResult.Ok },
            { With(With(v6, 4, 0x00), 5, 0x00), IpParseResult.Ok },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Vectors_parse_as_expected(byte[] packet, IpParseResult expected)
    {
        Assert.Equal(expected, IpPacket.TryParse(packet, out var info));
        if (expected != IpParseResult.Ok)
        {
            Assert.Equal(default, info);
        }
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(9);
        var buffer = new byte[80];
        for (int i = 0; i < 20000; i++)
        {
            random.NextBytes(buffer);
            buffer[0] = (byte)((random.Next(2) == 0 ? 0x40 : 0x60) | (buffer[0] & 0x0f));
            var span = buffer.AsSpan(0, random.Next(buffer.Length + 1));
            if (IpPacket.TryParse(span, out var info) == IpParseResult.Ok)
            {
                Assert.InRange(info.TotalLength, info.HeaderLength, span.Length);
                Assert.Equal(info.Version == 4 ? 4 : 16, IpPacket.Source(span, info).Length);
                Assert.Equal(info.Version == 4 ? 4 : 16, IpPacket.Destination(span, info).Length);
            }
        }
    }

    [Theory]
    [InlineData("10.10.0.2")]
    [InlineData("0.0.0.0")]
    [InlineData("255.255.255.255")]
    [InlineData("::")]
    [InlineData("::1")]
    [InlineData("fd00:10::abcd")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    [InlineData("::ffff:10.0.0.1")]
    public void IpKey_round_trips(string text)
    {
        var address = IPAddress.Parse(text);
        var key = IpKey.FromAddress(address);
        Assert.Equal(address, key.ToAddress());
        Assert.Equal(address.ToString(), key.ToString());
        Assert.Equal(key, IpKey.FromBytes(address.GetAddressBytes()));
        Assert.Equal(address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 4 : 6, key.Version);
    }

    [Fact]
    public void IpKey_distinguishes_families_and_works_as_dictionary_key()
    {
        var v4 = IpKey.FromAddress(IPAddress.Parse("0.0.0.1"));
        var v6 = IpKey.FromAddress(IPAddress.Parse("::1"));
        Assert.Equal(v4.Value, v6.Value);
        Assert.NotEqual(v4, v6);

        var routes = new Dictionary<IpKey, string> { [v4] = "a", [v6] = "b" };
        var packet = PacketBuilder.Ipv4Tcp([]);
        IpPacket.TryParse(packet, out var info);
        routes[IpKey.FromBytes(IpPacket.Destination(packet, info))] = "dst";
        Assert.Equal("dst", routes[IpKey.FromAddress(PacketBuilder.V4Destination)]);
        Assert.Equal(0x0a0a0002u, (uint)IpKey.FromBytes(IpPacket.Source(packet, info)).Value);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(15)]
    [InlineData(17)]
    public void IpKey_rejects_other_lengths(int length)
    {
        Assert.Throws<ArgumentException>(() => IpKey.FromBytes(new byte[length]));
    }

    private static byte[] With(byte[] packet, int index, byte value)
    {
        var copy = (byte[])packet.Clone();
        copy[index] = value;
        return copy;
    }
}
