using System.Net;
using System.Net.Sockets;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.DataPath;

/// <summary>
/// UDP segmentation offload (the `uso` extension) for real: senders use UDP_SEGMENT, as QUIC stacks do, so their
/// kernel hands the TUN one UDP super-packet for many datagrams. Between the lab's Isotun ends it must cross whole
/// (fewer frames than datagrams, read from the server's counters); towards a client without extensions it must be cut.
/// Every datagram must arrive, each exactly as sent.
/// </summary>
[Collection(DataPathCollection.Name)]
public sealed class UdpGsoTests(DataPathFixture fx, Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Datagram = 1200, PerSend = 10, Sends = 40, Port = 7070;
    private LabLayout L => fx.Layout;

    [SkippableFact]
    public void Udp_super_packets_cross_whole_between_isotun_ends_both_ways_and_every_datagram_arrives()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        Assert.Contains(fx.LogLines("server"), l => l.Contains($"at {fx.ClientAddress} (mtu 1400, extensions: batch, gso, uso, queues=2)"));

        var (rx0, tx0) = (Packets("rx"), Packets("tx"));
        Exchange(L.ClientNs, L.ServiceNs, new IPEndPoint(L.ServiceIp, Port), from: null);
        long upFrames = (long)(Packets("rx") - rx0);
        Exchange(L.ServiceNs, L.ClientNs, new IPEndPoint(fx.ClientAddress, Port), from: null);
        long downFrames = (long)(Packets("tx") - tx0);
        output.WriteLine($"{Sends * PerSend} datagrams each way: {upFrames} frames in, {downFrames} frames out");
        // One frame per UDP_SEGMENT send, give or take other traffic: far fewer than one per datagram.
        Assert.True(upFrames < Sends * PerSend / 2, $"client → server: {upFrames} frames for {Sends * PerSend} datagrams");
        Assert.True(downFrames < Sends * PerSend / 2, $"server → client: {downFrames} frames for {Sends * PerSend} datagrams");
    }

    [SkippableFact]
    public void Udp_super_packets_are_cut_into_datagrams_for_a_client_without_extensions()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var client = new SideClient(L, fx.Pin, "udp-plain-client", "dpudp0", "1012", "--no-extensions");
        long written0 = TunRxPackets(client.Device);
        Exchange(L.ServiceNs, L.ClientNs, new IPEndPoint(client.Address, Port), from: null);
        // The server cut them: the plain client got (and wrote to its TUN) one packet per datagram.
        long written = TunRxPackets(client.Device) - written0;
        Assert.True(written >= Sends * PerSend, $"the plain client wrote {written} packets for {Sends * PerSend} datagrams");
        // And the other way, its own TUN's super-packets are cut by the client itself.
        Exchange(L.ClientNs, L.ServiceNs, new IPEndPoint(L.ServiceIp, Port), from: client.Address);
        Assert.Equal(0, client.Count("connection lost"));
    }

    /// <summary>Packets written into a TUN in the client namespace by its client, from the kernel's counters.</summary>
    private long TunRxPackets(string dev)
    {
        var lines = Run.Exec("ip", ["-n", L.ClientNs, "-s", "link", "show", "dev", dev]).Stdout.Split('\n');
        int i = Array.FindIndex(lines, l => l.TrimStart().StartsWith("RX:", StringComparison.Ordinal));
        return long.Parse(lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    /// <summary>
    /// <see cref="Sends"/> UDP_SEGMENT sends of <see cref="PerSend"/> datagrams from <paramref name="senderNs"/> to a
    /// receiver in <paramref name="receiverNs"/>; every datagram must arrive with its own bytes.
    /// </summary>
    private static void Exchange(string senderNs, string receiverNs, IPEndPoint to, IPAddress? from)
    {
        using var receiver = NetworkNamespace.Run(receiverNs, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 10_000, ReceiveBufferSize = 4 << 20 };
            s.Bind(new IPEndPoint(IPAddress.Any, Port));
            return s;
        });
        using var sender = NetworkNamespace.Run(senderNs, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            if (from is not null) s.Bind(new IPEndPoint(from, 0));
            s.SetRawSocketOption(17 /* SOL_UDP */, 103 /* UDP_SEGMENT */, BitConverter.GetBytes(Datagram));
            return s;
        });
        var expected = new HashSet<string>();
        var buf = new byte[Datagram * PerSend];
        for (int send = 0; send < Sends; send++)
        {
            for (int d = 0; d < PerSend; d++)
            {
                // Each datagram names itself in its first bytes and fills the rest from that name.
                var slice = buf.AsSpan(d * Datagram, Datagram);
                new Random(send * PerSend + d).NextBytes(slice);
                BitConverter.TryWriteBytes(slice, send * PerSend + d);
                expected.Add(Convert.ToHexString(slice));
            }
            sender.SendTo(buf, to);
            Thread.Sleep(2); // keep well inside the receiver's buffer
        }
        var got = new byte[65536];
        int received = 0;
        while (received < Sends * PerSend)
        {
            int n;
            try { n = receiver.Receive(got); }
            catch (SocketException) { break; }
            Assert.Equal(Datagram, n);
            Assert.True(expected.Remove(Convert.ToHexString(got, 0, n)), "a datagram arrived changed or twice");
            received++;
        }
        Assert.True(expected.Count == 0, $"{expected.Count} of {Sends * PerSend} datagrams never arrived");
    }

    private double Packets(string direction) => fx.Metric("isotun_tunnel_packets_total", "tenant=\"demo\"", $"direction=\"{direction}\"");
}
