using Isotun.Protocol.Cstp;
using Isotun.Server;

namespace Isotun.UnitTests.InProcess;

/// <summary>Dead peer detection: the server answers probes, probes a silent peer, and closes a dead one; a real client stays up.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessDpdTests(InProcessPki pki)
{
    [Fact]
    public async Task The_server_answers_a_dpd_request()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());

        Assert.True(await peer.SendFrameAsync(CstpPacketType.DpdRequest, []));
        Assert.NotNull(await peer.ReadFrameAsync(CstpPacketType.DpdResponse));
    }

    [Fact]
    public async Task A_dpd_request_is_echoed_when_small_and_answered_without_its_payload_when_large()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());

        var small = Enumerable.Range(0, 1500).Select(i => (byte)i).ToArray();
        Assert.True(await peer.SendFrameAsync(CstpPacketType.DpdRequest, small));
        Assert.Equal(small, (await peer.ReadFrameAsync(CstpPacketType.DpdResponse))!.Value.Payload.ToArray());
        Assert.True(await peer.SendFrameAsync(CstpPacketType.DpdRequest, new byte[TunnelConnection.MaxPlainFramePayload]));
        Assert.Equal(0, (await peer.ReadFrameAsync(CstpPacketType.DpdResponse))!.Value.Payload.Length);
    }

    /// <summary>
    /// A peer that floods DPD requests of a whole record each and reads nothing makes the server hold no more than the
    /// session's memory budget: the answers are small, and are dropped (and counted) when there is no room.
    /// </summary>
    [Fact]
    public async Task A_peer_that_floods_dpd_requests_and_never_reads_stays_within_the_sessions_memory_budget()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var session = Assert.Single(server.Server.Sessions.All);
        var request = RawCstpClient.Frame(CstpPacketType.DpdRequest, new byte[TunnelConnection.MaxPlainFramePayload]);
        long most = 0;
        for (int i = 0; i < 2048; i++)
        {
            Assert.True(await peer.SendAsync(request), $"the server closed the connection after {i} requests");
            most = Math.Max(most, session.Budget!.Held);
        }
        await Task.Delay(200);
        most = Math.Max(most, session.Budget!.Held);
        Assert.True(most <= session.Budget.Limit, $"the session held {most} bytes, over its budget of {session.Budget.Limit}");
        // Still served: it answers once it reads again.
        Assert.NotNull(await peer.ReadFrameAsync(CstpPacketType.DpdResponse));
    }

    [Fact]
    public async Task The_server_probes_a_silent_peer_and_closes_it_when_it_stays_silent()
    {
        // The config allows 5 s at the least; one second keeps the test short.
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Dpd = 1 });
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var session = server.Session(peer.Parameters!.Address)!;

        Assert.NotNull(await peer.ReadFrameAsync(CstpPacketType.DpdRequest));
        Assert.True(await peer.WaitForCloseAsync(), "the server kept a dead peer");
        await Eventually.True(() => session.Connection is null, "the session still holds the dead connection");
        // Dead is not logged off: the session waits for a reconnect with its cookie.
        Assert.Same(session, server.Session(peer.Parameters.Address));
    }

    [Fact]
    public async Task A_peer_that_answers_probes_is_kept()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Dpd = 1 });
        await using var peer = await RawCstpClient.ConnectAsync(server.Options());
        var connection = server.Session(peer.Parameters!.Address)!.Connection;

        for (int i = 0; i < 3; i++)
        {
            Assert.NotNull(await peer.ReadFrameAsync(CstpPacketType.DpdRequest));
            Assert.True(await peer.SendFrameAsync(CstpPacketType.DpdResponse, []));
        }
        Assert.Same(connection, server.Session(peer.Parameters.Address)!.Connection);
    }

    [Fact]
    public async Task An_idle_isotun_client_keeps_its_session_through_many_dpd_periods()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Dpd = 1, Keepalive = 1 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var connection = server.Session(client.Address)!.Connection;

        // Idle for several times what would close a silent peer (3 × DPD).
        await Task.Delay(TimeSpan.FromSeconds(5));

        Assert.Same(connection, server.Session(client.Address)!.Connection);
        Assert.False(client.Run.IsCompleted);
        var packet = Packets.Udp(client.Address, Packets.Far4, 40000, 53, "still here"u8);
        client.Send(packet);
        Assert.Equal(packet, Packets.Take(server.Tun(), "the idle session no longer carries data"));
    }
}
