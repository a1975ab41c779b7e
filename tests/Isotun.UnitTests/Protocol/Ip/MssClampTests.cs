using Isotun.Protocol.Ip;

namespace Isotun.UnitTests.Protocol.Ip;

public class MssClampTests
{
    [Fact]
    public void Clamps_ipv4_syn_and_keeps_checksum_valid()
    {
        var packet = PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460));
        Assert.True(PacketBuilder.TcpChecksumValid(packet, 20, 4));

        Assert.True(MssClamp.TryClamp(packet, 1350));

        Assert.Equal(1350, PacketBuilder.Mss(packet, 20, 20));
        Assert.True(PacketBuilder.TcpChecksumValid(packet, 20, 4));
    }

    [Fact]
    public void Clamps_ipv6_syn_ack_and_keeps_checksum_valid()
    {
        var packet = PacketBuilder.Ipv6Tcp(PacketBuilder.LinuxSynOptions(1440), PacketBuilder.Syn | PacketBuilder.Ack);
        Assert.True(MssClamp.TryClamp(packet, MssClamp.MssForMtu(1390, 6)));
        Assert.Equal(1330, PacketBuilder.Mss(packet, 40, 20));
        Assert.True(PacketBuilder.TcpChecksumValid(packet, 40, 6));
    }

    [Fact]
    public void Clamps_mss_at_an_odd_offset()
    {
        // NOP first puts the MSS value at TCP offset 23, straddling two checksum words.
        byte[] options = [0x01, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x00];
        var v4 = PacketBuilder.Ipv4Tcp(options, payloadLength: 3);
        Assert.True(MssClamp.TryClamp(v4, 1200));
        Assert.Equal(1200, PacketBuilder.Mss(v4, 20, 21));
        Assert.True(PacketBuilder.TcpChecksumValid(v4, 20, 4));

        var v6 = PacketBuilder.Ipv6Tcp(options);
        Assert.True(MssClamp.TryClamp(v6, 1200));
        Assert.True(PacketBuilder.TcpChecksumValid(v6, 40, 6));
    }

    [Fact]
    public void Clamps_with_ip_options_present()
    {
        var packet = PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(9000), ipOptionsLength: 4);
        Assert.True(MssClamp.TryClamp(packet, 1360));
        Assert.Equal(1360, PacketBuilder.Mss(packet, 24, 20));
        Assert.True(PacketBuilder.TcpChecksumValid(packet, 24, 4));
    }

    [Fact]
    public void Random_packets_clamp_with_valid_checksums()
    {
        var random = new Random(21);
        for (int i = 0; i < 5000; i++)
        {
            int nops = random.Next(0, 8);
            ushort mss = (ushort)random.Next(0, 65536);
            int max = random.Next(1, 65536);
            var options = new List<byte>();
            options.AddRange(Enumerable.Repeat((byte)0x01, nops));
            options.AddRange([0x02, 0x04, (byte)(mss >> 8), (byte)mss]);
            if (random.Next(2) == 0)
            {
                options.AddRange([0x04, 0x02]);
            }

            bool v6 = random.Next(2) == 0;
            int payload = random.Next(0, 40);
            var packet = v6 ? PacketBuilder.Ipv6Tcp(options.ToArray(), payloadLength: payload) : PacketBuilder.Ipv4Tcp(options.ToArray(), payloadLength: payload);
            int tcpOffset = v6 ? 40 : 20;
            var before = (byte[])packet.Clone();

            bool changed = MssClamp.TryClamp(packet, max);

            Assert.Equal(mss > max, changed);
            Assert.Equal(Math.Min(mss, max), PacketBuilder.Mss(packet, tcpOffset, 20 + nops));
            Assert.True(PacketBuilder.TcpChecksumValid(packet, tcpOffset, v6 ? 6 : 4));
            if (!changed)
            {
                Assert.Equal(before, packet);
            }
        }
    }

    public static TheoryData<string, byte[]> UntouchedPackets() => new()
    {
        { "non-SYN", PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460), PacketBuilder.Ack) },
        { "v6 non-SYN", PacketBuilder.Ipv6Tcp(PacketBuilder.LinuxSynOptions(1460), PacketBuilder.Ack, payloadLength: 100) },
        { "MSS already small", PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1200)) },
        { "MSS equal", PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1300)) },
        { "no options", PacketBuilder.Ipv4Tcp([]) },
        { "no MSS", PacketBuilder.Ipv4Tcp([0x01, 0x01, 0x04, 0x02]) },
        { "MSS after EOL", PacketBuilder.Ipv4Tcp([0x00, 0x02, 0x04, 0x05, 0xb4]) },
        { "MSS with bad length", PacketBuilder.Ipv4Tcp([0x02, 0x05, 0x05, 0xb4, 0x00]) },
        { "zero-length option", PacketBuilder.Ipv4Tcp([0x04, 0x00, 0x02, 0x04, 0x05, 0xb4]) },
        { "length-1 option", PacketBuilder.Ipv4Tcp([0x04, 0x01, 0x02, 0x04, 0x05, 0xb4]) },
        { "option overruns header", PacketBuilder.Ipv4Tcp([0x01, 0x01, 0x08, 0x0a]) },
        { "MSS overruns header", PacketBuilder.Ipv4Tcp([0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x04]) },
        { "kind without length", PacketBuilder.Ipv4Tcp([0x01, 0x01, 0x01, 0x08]) },
        { "later fragment", PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460), fragmentField: 0x0001) },
        { "v6 hop-by-hop first", PacketBuilder.Ipv6Tcp(PacketBuilder.LinuxSynOptions(1460), nextHeader: 0) },
        { "udp", Udp(PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460))) },
        { "data offset too small", WithDataOffset(PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460)), 4) },
        { "data offset beyond packet", WithDataOffset(PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460)), 15) },
        { "truncated TCP header", PacketBuilder.Ipv4Tcp([])[..30] },
        { "junk", [0x45, 0, 0, 0] },
    };

    [Theory]
    [MemberData(nameof(UntouchedPackets))]
    public void Leaves_packet_untouched(string name, byte[] packet)
    {
        var before = (byte[])packet.Clone();
        Assert.False(MssClamp.TryClamp(packet, 1300), name);
        Assert.Equal(before, packet);
    }

    [Fact]
    public void First_fragment_with_more_fragments_is_clamped()
    {
        var packet = PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460), fragmentField: 0x2000);
        Assert.True(MssClamp.TryClamp(packet, 1300));
        Assert.True(PacketBuilder.TcpChecksumValid(packet, 20, 4));
    }

    [Fact]
    public void Truncations_and_mutations_never_throw()
    {
        var random = new Random(33);
        var seeds = new[]
        {
            PacketBuilder.Ipv4Tcp(PacketBuilder.LinuxSynOptions(1460)),
            PacketBuilder.Ipv6Tcp(PacketBuilder.LinuxSynOptions(1460)),
            PacketBuilder.Ipv4Tcp([0x01, 0x02, 0x04, 0x05, 0xb4]),
        };

        foreach (var seed in seeds)
        {
            for (int length = 0; length <= seed.Length; length++)
            {
                MssClamp.TryClamp(seed[..length], 1300);
            }
        }

        for (int i = 0; i < 20000; i++)
        {
            var packet = (byte[])seeds[random.Next(seeds.Length)].Clone();
            int edits = random.Next(1, 5);
            for (int e = 0; e < edits; e++)
            {
                packet[random.Next(packet.Length)] = (byte)random.Next(256);
            }

            MssClamp.TryClamp(packet.AsSpan(0, random.Next(packet.Length + 1)), random.Next(1, 65536));
        }
    }

    [Theory]
    [InlineData(1500, 4, 1460)]
    [InlineData(1500, 6, 1440)]
    [InlineData(1390, 4, 1350)]
    [InlineData(1390, 6, 1330)]
    public void Mss_for_mtu(int mtu, int version, int expected) => Assert.Equal(expected, MssClamp.MssForMtu(mtu, version));

    [Fact]
    public void Invalid_arguments_throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MssClamp.MssForMtu(1500, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => MssClamp.TryClamp(new byte[60], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => MssClamp.TryClamp(new byte[60], 65536));
    }

    private static byte[] Udp(byte[] packet)
    {
        packet[9] = 17;
        return packet;
    }

    private static byte[] WithDataOffset(byte[] packet, int words)
    {
        packet[20 + 12] = (byte)(words << 4);
        return packet;
    }
}
