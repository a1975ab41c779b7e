using Isotun.Protocol.Addressing;
using System.Net;
using Isotun.Metrics;
using Isotun.UnitTests.Offload;
using Isotun.UnitTests.Protocol.Ip;

namespace Isotun.UnitTests.InProcess;

/// <summary>Packets through a whole client and server: into the client's memory TUN, out of the server's, and back.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessDataTests(InProcessPki pki)
{
    [Theory]
    [InlineData(false, false)] // a stock client: plain CSTP, no virtio headers
    [InlineData(true, false)]  // Isotun extensions (batching), TUNs without offload
    [InlineData(true, true)]   // GSO negotiated, every TUN with virtio headers
    public async Task An_ipv4_packet_crosses_from_client_to_server_and_back(bool extensions, bool offload)
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Offload = offload });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Extensions = extensions, Offload = offload });
        var connection = server.Session(client.Address)!.Connection!;
        Assert.Equal(extensions, connection.Writer.Batching);
        Assert.Equal(extensions && offload, connection.PeerGso);
        client.RoundTrip(server);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_ipv6_packet_crosses_from_client_to_server_and_back(bool offload)
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Pool6 = IpNetwork.Parse("fd77::/64"), Offload = offload });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Offload = offload });
        client.RoundTrip(server, client.Parameters.Address6!, Packets.Far6);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_burst_of_packets_arrives_complete_and_in_order_both_ways(bool extensions)
    {
        // With batching several frames share a TLS record; without, each is one record. Either way nothing is lost or reordered.
        const int count = 500;
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Extensions = extensions });
        Assert.Equal(extensions, server.Session(client.Address)!.Connection!.Writer.Batching);

        for (int i = 0; i < count; i++) client.Send(Packets.Numbered(client.Address, Packets.Far4, i));
        for (int i = 0; i < count; i++) Assert.Equal(i, Packets.Number(Packets.Take(server.Tun(), $"packet {i} of the upload did not arrive")));

        for (int i = 0; i < count; i++)
            Assert.True(server.Tun().Inject(Packets.Framed(Packets.Numbered(Packets.Far4, client.Address, i), server.Tun().Offload)));
        for (int i = 0; i < count; i++) Assert.Equal(i, Packets.Number(client.Receive($"packet {i} of the download did not arrive")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_answer_the_host_gives_at_once_goes_back_from_the_connections_thread_in_order(bool offload)
    {
        // As the kernel answers a ping: the answer is in the TUN queue before the server's write returns, and the
        // connection that wrote sends it on while the queue's reader waits. With a burst, the reader and the connection
        // take turns at the queue, and the answers still come back complete and in order.
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Offload = offload });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Offload = offload });
        var tun = server.Tun();
        tun.Answer = framed =>
        {
            var packet = Packets.Unframed(framed, tun.Offload);
            return Packets.IsProbe(packet) ? null : Packets.Framed(Packets.Numbered(Packets.Far4, client.Address, Packets.Number(packet)), tun.Offload);
        };
        var tenant = server.Session(client.Address)!.Tenant;
        long waits = tun.Queues.Sum(q => q.Waits), served = tenant.ServedAfterWrite;

        for (int i = 0; i < 50; i++)
        {
            await Task.Delay(5); // pings come apart; a stream of bursts is left to the reader
            client.Send(Packets.Numbered(client.Address, Packets.Far4, i));
            Assert.Equal(i, Packets.Number(client.Receive($"the answer to packet {i} did not arrive")));
        }
        // Each answer the connection sent itself was held from the reader, which never woke for it.
        long servedNow = tenant.ServedAfterWrite - served, wokeNow = tun.Queues.Sum(q => q.Waits) - waits;
        Assert.True(servedNow > 0, "no answer was sent from the connection's thread");
        Assert.True(servedNow + wokeNow == 50, $"{servedNow} answers sent by the connection, the reader woke {wokeNow} times, for 50 pings");

        const int burst = 300;
        for (int i = 0; i < burst; i++) client.Send(Packets.Numbered(client.Address, Packets.Far4, 1000 + i));
        for (int i = 0; i < burst; i++) Assert.Equal(1000 + i, Packets.Number(client.Receive($"the answer to packet {1000 + i} did not arrive")));
    }

    [Fact]
    public async Task The_server_routes_each_packet_to_the_client_holding_its_destination()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var a = await InProcessClient.ConnectAsync(server, server.Options());
        await using var b = await InProcessClient.ConnectAsync(server, server.Options());

        var toB = Packets.Udp(Packets.Far4, b.Address, 53, 40000, "for b"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(toB, server.Tun().Offload)));
        Assert.Equal(toB, b.Receive("b did not get its packet"));
        var toA = Packets.Udp(Packets.Far4, a.Address, 53, 40000, "for a"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(toA, server.Tun().Offload)));
        Assert.Equal(toA, a.Receive("a did not get its packet"));
        Assert.True(Packets.NothingArrives(b.Tun), "b got a's packet as well");
    }

    [Fact]
    public async Task A_packet_for_an_address_without_a_session_is_dropped_and_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());

        var stray = Packets.Udp(Packets.Far4, IPAddress.Parse("10.77.0.200"), 53, 40000, "nobody"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(stray, server.Tun().Offload)));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.NoSession) == 1, "the stray packet was not counted as no-session");
        Assert.True(Packets.NothingArrives(client.Tun), "the client got a packet for another address");
    }

    [Fact]
    public async Task Client_to_client_packets_are_dropped_unless_the_tenant_allows_them()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var a = await InProcessClient.ConnectAsync(server, server.Options());
        await using var b = await InProcessClient.ConnectAsync(server, server.Options());

        a.Send(Packets.Udp(a.Address, b.Address, 40000, 40000, "hello b"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.ClientToClient) == 1, "the client-to-client packet was not counted");
        Assert.True(Packets.NothingArrives(server.Tun()), "the client-to-client packet reached the tenant's TUN");
    }

    [Fact]
    public async Task Client_to_client_packets_reach_the_tenant_network_when_allowed()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { ClientToClient = true });
        await using var a = await InProcessClient.ConnectAsync(server, server.Options());
        await using var b = await InProcessClient.ConnectAsync(server, server.Options());

        var packet = Packets.Udp(a.Address, b.Address, 40000, 40000, "hello b"u8);
        a.Send(packet);
        Assert.Equal(packet, Packets.Take(server.Tun(), "the allowed client-to-client packet did not reach the tenant's TUN"));
    }

    [Fact]
    public async Task A_syn_from_the_client_has_its_mss_clamped_to_the_tunnel_mtu()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1300, Offload = false });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Offload = false });

        var syn = Segments.Tcp(new TcpSpec { Source = client.Address, Destination = Packets.Far4, Flags = Segments.Syn, Options = PacketBuilder.LinuxSynOptions(1460) }, []);
        client.Send(syn);
        var clamped = Packets.Take(server.Tun(), "the SYN did not arrive");
        Assert.Equal(1300 - 40, PacketBuilder.Mss(clamped, 20, 20));
        Assert.True(Segments.TcpChecksumValid(clamped));
    }
}
