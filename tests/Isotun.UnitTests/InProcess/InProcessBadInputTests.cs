using Isotun.Protocol.Addressing;
using System.Net;
using Isotun.Metrics;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Offload;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// Bad input from a peer: a bad packet is dropped and counted and its connection goes on; a bad frame closes
/// only the connection that sent it, while another session of the same tenant keeps its data flowing.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessBadInputTests(InProcessPki pki)
{
    [Fact]
    public async Task A_spoofed_ipv4_source_is_dropped_and_counted_and_the_session_goes_on()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());

        client.Send(Packets.Udp(IPAddress.Parse("10.77.0.99"), Packets.Far4, 40000, 53, "spoofed"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource) == 1, "the spoofed packet was not counted");
        var good = Packets.Udp(client.Address, Packets.Far4, 40000, 53, "honest"u8);
        client.Send(good);
        Assert.Equal(good, Packets.Take(server.Tun(), "the honest packet after the spoofed one did not arrive"));
    }

    /// <summary>A user's inbound rate limit charges every packet as it came, the ones refused too: refused packets cost
    /// the server as much to decrypt and look at, and a flood of them is shaped like any other traffic.</summary>
    [Fact]
    public async Task Refused_packets_count_against_the_users_rate_limit()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { RateLimit = 100_000 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var started = System.Diagnostics.Stopwatch.StartNew();
        var spoofed = Packets.Udp(IPAddress.Parse("10.77.0.99"), Packets.Far4, 40000, 53, new byte[972]); // 1,000 bytes
        for (int i = 0; i < 400; i++) client.Send(spoofed); // 400 KB: past the 64 KiB burst, about 3.3 s at 100 KB/s
        var good = Packets.Udp(client.Address, Packets.Far4, 40000, 53, "honest"u8);
        client.Send(good);
        Assert.Equal(good, Packets.Take(server.Tun(), "the honest packet after the refused ones did not arrive"));
        Assert.True(started.Elapsed >= TimeSpan.FromSeconds(2.5), $"the refused packets were not shaped: the next one came through after {started.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(400, ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource));
    }

    [Fact]
    public async Task A_spoofed_ipv6_source_is_dropped_and_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Pool6 = IpNetwork.Parse("fd77::/64") });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());

        client.Send(Packets.Udp(IPAddress.Parse("fd77::dead"), Packets.Far6, 40000, 53, "spoofed"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource) == 1, "the spoofed IPv6 packet was not counted");
        Assert.True(Packets.NothingArrives(server.Tun()), "the spoofed IPv6 packet reached the tenant's TUN");
    }

    [Fact]
    public async Task A_source_from_another_tenants_pool_is_dropped_as_spoofed()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t, t => t);
        await using var a = await InProcessClient.ConnectAsync(server, server.Options(server.Tenants[0]), tenant: server.Tenants[0]);
        await using var b = await InProcessClient.ConnectAsync(server, server.Options(server.Tenants[1]), tenant: server.Tenants[1]);

        // A claims B's address: the packet never reaches either tenant's TUN.
        a.Send(Packets.Udp(b.Address, Packets.Far4, 40000, 53, "as b"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenants[0], DropReason.SpoofedSource) == 1, "the cross-tenant source was not counted");
        Assert.True(Packets.NothingArrives(server.Tun(server.Tenants[1])), "a packet of tenant A reached tenant B");
        Assert.True(Packets.NothingArrives(server.Tun(server.Tenants[0])), "the spoofed packet reached tenant A's TUN");
    }

    [Theory]
    [InlineData("bad magic")]
    [InlineData("frame too long")]
    [InlineData("compressed")]
    public async Task A_bad_frame_closes_only_the_connection_that_sent_it(string what)
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var bystander = await InProcessClient.ConnectAsync(server, server.Options());
        var bystanderConnection = server.Session(bystander.Address)!.Connection;
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());

        byte[] bad = what switch
        {
            "bad magic" => [(byte)'X', (byte)'T', (byte)'F', 1, 0, 4, 0, 0, 1, 2, 3, 4],
            // Larger than one TLS record can carry for a peer without GSO.
            "frame too long" => [(byte)'S', (byte)'T', (byte)'F', 1, 0xff, 0xff, 0, 0],
            _ => RawCstpClient.Frame(CstpPacketType.Compressed, [1, 2, 3, 4]),
        };
        await peer.SendAsync(bad);

        Assert.True(await peer.WaitForCloseAsync(), $"the server kept a connection that sent {what}");
        Assert.Same(bystanderConnection, server.Session(bystander.Address)!.Connection);
        var packet = Packets.Udp(bystander.Address, Packets.Far4, 40000, 53, "unaffected"u8);
        bystander.Send(packet);
        Assert.Equal(packet, Packets.Take(server.Tun(), "the other session stopped carrying data"));
    }

    [Fact]
    public async Task A_compressed_frame_is_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());

        await peer.SendFrameAsync(CstpPacketType.Compressed, [1, 2, 3, 4]);
        Assert.True(await peer.WaitForCloseAsync());
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.CompressedNotNegotiated) == 1, "the compressed frame was not counted");
    }

    [Fact]
    public async Task A_malformed_packet_is_dropped_and_counted_and_the_connection_goes_on()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var address = peer.Parameters!.Address;

        var truncated = Packets.Udp(address, Packets.Far4, 40000, 53, "truncated"u8)[..24];
        Assert.True(await peer.SendFrameAsync(CstpPacketType.Data, truncated));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.Malformed) == 1, "the malformed packet was not counted");

        var good = Packets.Udp(address, Packets.Far4, 40000, 53, "whole"u8);
        Assert.True(await peer.SendFrameAsync(CstpPacketType.Data, good));
        Assert.Equal(good, Packets.Take(server.Tun(), "the connection did not go on after the malformed packet"));
    }

    [Fact]
    public async Task A_packet_above_the_mtu_is_dropped_and_counted_and_the_connection_goes_on()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var address = peer.Parameters!.Address;

        Assert.True(await peer.SendFrameAsync(CstpPacketType.Data, Packets.Udp(address, Packets.Far4, 40000, 53, new byte[1500])));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.Oversize) == 1, "the oversize packet was not counted");

        Assert.True(await peer.SendFrameAsync(CstpPacketType.DpdRequest, []));
        Assert.NotNull(await peer.ReadFrameAsync(CstpPacketType.DpdResponse));
    }

    [Fact]
    public async Task Gso_frames_from_a_peer_that_did_not_negotiate_gso_are_counted_and_then_close_it()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var packet = Packets.Framed(new VirtioNetHeader(), Packets.Udp(peer.Parameters!.Address, Packets.Far4, 40000, 53, "gso?"u8));

        Assert.True(await peer.SendFrameAsync(CstpPacketType.IsotunGso, packet));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.GsoNotNegotiated) == 1, "the GSO frame was not counted");
        for (int i = 0; i < 8; i++) await peer.SendFrameAsync(CstpPacketType.IsotunGso, packet);

        Assert.True(await peer.WaitForCloseAsync(), "the server kept a peer that keeps sending GSO frames");
        Assert.True(Packets.NothingArrives(server.Tun()), "a GSO frame that was not negotiated reached the TUN");
    }

    [Fact]
    public async Task A_connect_with_a_forged_cookie_is_refused()
    {
        await using var server = await InProcessServer.StartAsync(pki);

        await using var forged = await RawCstpClient.ConnectAsync(server.Options(), cookie: "Zm9yZ2Vk");
        Assert.Equal(401, forged.Status);
        Assert.Empty(server.Server.Sessions.All);
    }
}
