using Isotun.Client;
using Isotun.Metrics;
using Isotun.Protocol.Cstp;
using Isotun.Server;

namespace Isotun.UnitTests.InProcess;

/// <summary>Sessions outlive TCP connections: reconnecting with the cookie keeps the address; a logoff ends the session.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessReconnectTests(InProcessPki pki)
{
    [Fact]
    public async Task A_client_whose_connection_is_lost_reconnects_with_its_cookie_and_keeps_its_address()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var address = client.Address;
        var session = server.Session(address)!;
        var lost = session.Connection!;

        lost.Abort(TunnelEnd.Error);

        await Eventually.True(() => session.Connection is { } now && now != lost, "the client did not reconnect");
        Assert.Same(session, server.Session(address));
        Assert.Equal(address, client.Address);
        Assert.Single(server.Server.Sessions.All);
        var packet = Packets.Udp(address, Packets.Far4, 40000, 53, "again"u8);
        await Eventually.True(() =>
        {
            // The first packets after the loss may be read while no connection is up, and are dropped then.
            client.Send(packet);
            return server.Tun().TryTake(out var got, TimeSpan.FromMilliseconds(200)) && got.AsSpan(server.Tun().Offload ? 10 : 0).SequenceEqual(packet);
        }, "the reconnected session does not carry data");
        var reply = Packets.Udp(Packets.Far4, address, 53, 40000, "welcome back"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(reply, server.Tun().Offload)));
        Assert.Equal(reply, client.Receive("the reply after the reconnect did not arrive"));
    }

    [Fact]
    public async Task A_lost_primary_brings_the_whole_group_of_queues_back()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 2 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 2 });
        var session = await server.LiveSessionAsync(client.Address, 2);
        var lost = session.Connection!;

        lost.Abort(TunnelEnd.Error);

        await Eventually.True(() => session.Connection is { } now && now != lost && session.LiveQueues == 2, "the group did not come back with both queues");
        Assert.Equal(2, client.Tun.Queues.Length);
    }

    [Fact]
    public async Task The_cookie_connects_again_after_the_tcp_connection_closed_and_asks_back_the_same_address()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        string cookie;
        System.Net.IPAddress address;
        await using (var first = await RawCstpClient.ConnectAsync(server.Options()))
        {
            Assert.Equal(200, first.Status);
            cookie = first.Cookie!;
            address = first.Parameters!.Address;
        }
        await Eventually.True(() => server.Session(address)?.Connection is null, "the server did not notice the closed connection");

        await using var again = await RawCstpClient.ConnectAsync(server.Options(), cookie, address.ToString());
        Assert.Equal(200, again.Status);
        Assert.Equal(address, again.Parameters!.Address);
        Assert.Single(server.Server.Sessions.All);
    }

    [Fact]
    public async Task A_user_disconnect_ends_the_session_and_its_cookie()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        byte[] bye = [CstpDisconnectReason.User, .. "bye"u8];

        Assert.True(await peer.SendFrameAsync(CstpPacketType.Disconnect, bye));
        Assert.True(await peer.WaitForCloseAsync(), "the server kept the connection after DISCONNECT");
        await Eventually.True(() => !server.Server.Sessions.All.Any(), "the session outlived its DISCONNECT");

        await using var again = await RawCstpClient.ConnectAsync(server.Options(), peer.Cookie);
        Assert.Equal(401, again.Status);
    }

    /// <summary>
    /// A stop while the client's writes are stuck (a server, or a path, that stopped reading during an upload): the
    /// DISCONNECT cannot follow them on that connection, so it goes on a new one, and the server ends the session
    /// and its cookie all the same.
    /// </summary>
    [Fact]
    public async Task A_client_stopped_while_its_writes_are_stuck_logs_off_on_a_new_connection()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var relay = new FreezingRelay(server.Port);
        var client = await InProcessClient.ConnectAsync(server, server.Options() with { Server = new Uri($"https://127.0.0.1:{relay.Port}/{server.Tenant}") });
        var address = client.Address;
        relay.Freeze(); // the tunnel's connection now carries nothing either way

        // An upload until the client's TUN queue stays full: its writer is stuck on the socket.
        var packet = Packets.Udp(address, Packets.Far4, 40000, 9, new byte[1300]);
        var framed = Packets.Framed(packet, client.Offload);
        var stuckSince = DateTime.UtcNow;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < until && DateTime.UtcNow - stuckSince < TimeSpan.FromSeconds(1))
        {
            if (client.Tun.Inject(framed, 0)) stuckSince = DateTime.UtcNow;
            else await Task.Delay(10);
        }
        Assert.True(DateTime.UtcNow - stuckSince >= TimeSpan.FromSeconds(1), "the client's writes never got stuck");

        Assert.Equal(ClientExitCode.Ok, await client.StopAsync());
        await Eventually.True(() => server.Session(address) is null, "the server kept the session of a client that logged off");
        await client.DisposeAsync();
    }

    [Fact]
    public async Task A_stopped_client_logs_off_and_its_address_gets_no_more_packets()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        var client = await InProcessClient.ConnectAsync(server, server.Options());
        var address = client.Address;

        Assert.Equal(ClientExitCode.Ok, await client.StopAsync());

        await Eventually.True(() => server.Session(address) is null, "the server kept the session of a client that logged off");
        Assert.True(server.Tun().Inject(Packets.Framed(Packets.Udp(Packets.Far4, address, 53, 40000, "late"u8), server.Tun().Offload)));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.NoSession) == 1, "the packet for the gone client was not counted as no-session");
        await client.DisposeAsync();
    }
}
