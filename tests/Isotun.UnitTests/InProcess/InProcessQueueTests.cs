using Isotun.Protocol.Ip;
using Isotun.Server;

namespace Isotun.UnitTests.InProcess;

/// <summary>Several TLS connections joined to one session as queues, each with its own TUN queue on both sides.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessQueueTests(InProcessPki pki)
{
    [Fact]
    public async Task A_client_asking_for_four_queues_gets_them_and_each_carries_its_tun_queue()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 4 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 4 });
        var session = await server.LiveSessionAsync(client.Address, 4);
        Assert.Equal(4, client.Tun.Queues.Length);
        Assert.Equal(4, server.Tun().Queues.Length);

        // TUN queue k of the client sends on connection k, which writes into TUN queue k of the server.
        for (int q = 0; q < 4; q++)
        {
            long before = server.Tun().Queues[q].Writes;
            client.Send(Packets.Numbered(client.Address, Packets.Far4, q), q);
            Assert.Equal(q, Packets.Number(Packets.Take(server.Tun(), $"the packet of queue {q} did not arrive")));
            Assert.Equal(before + 1, server.Tun().Queues[q].Writes);
        }
    }

    [Fact]
    public async Task The_server_grants_no_more_queues_than_the_tenant_has()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 2 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 4 });

        Assert.Equal(2, client.Tun.Queues.Length);
        var session = await server.LiveSessionAsync(client.Address, 2);
        Assert.Equal(2, session.QueueCount);
    }

    [Fact]
    public async Task Flows_from_the_server_spread_over_the_queues_and_all_arrive()
    {
        const int flows = 64;
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 4 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 4 });
        var session = await server.LiveSessionAsync(client.Address, 4);

        for (int i = 0; i < flows; i++)
            Assert.True(server.Tun().Inject(Packets.Framed(Packets.Numbered(Packets.Far4, client.Address, i, sourcePort: (ushort)(20000 + i)), server.Tun().Offload)));
        var seen = new HashSet<int>();
        for (int i = 0; i < flows; i++) seen.Add(Packets.Number(client.Receive($"{flows - i} packets did not arrive")));
        Assert.Equal(flows, seen.Count);
        Assert.True(client.Tun.Queues.Count(q => q.Writes > 0) >= 2, "every flow came through one queue");
    }

    /// <summary>
    /// A further queue whose connection never answers (taken by a middlebox, a server gone slow) holds up the tunnel for
    /// the join wait only: the primary carries the session meanwhile, and the queue is joined again in the background.
    /// </summary>
    [Fact]
    public async Task A_queue_that_never_answers_holds_the_tunnel_up_no_longer_than_the_join_wait()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 2 });
        await using var relay = new FreezingRelay(server.Port) { PassFirst = 2 }; // the login and the primary's CONNECT
        var options = server.Options() with { Server = new Uri($"https://127.0.0.1:{relay.Port}/{server.Tenant}"), Queues = 2 };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var client = await InProcessClient.ConnectAsync(server, options);
        var packet = Packets.Udp(client.Address, Packets.Far4, 40000, 53, "on the primary"u8);
        client.Send(packet);
        Assert.Equal(packet, Packets.Take(server.Tun(), "the primary carried nothing while a queue did not answer"));
        // Before, the tunnel waited for the join's own deadlines: 15 s to connect (and 30 s more for its CONNECT).
        Assert.True(clock.Elapsed < Isotun.Client.VpnClient.JoinWait + TimeSpan.FromSeconds(5), $"the tunnel carried its first packet after {clock.Elapsed}");
        Assert.Equal(1, server.Session(client.Address)!.LiveQueues);
    }

    [Fact]
    public async Task A_lost_queue_is_joined_again_while_the_session_goes_on()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 2 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 2 });
        var session = await server.LiveSessionAsync(client.Address, 2);
        var primary = session.Connection;

        var queue1 = QueueConnection(session, client.Address, 1);
        queue1.Abort(TunnelEnd.Error);

        await Eventually.True(() => session.LiveQueues == 2 && TryQueueConnection(session, client.Address, 1) is { } now && now != queue1, "queue 1 was not joined again");
        Assert.Same(primary, session.Connection);
        var packet = Packets.Udp(client.Address, Packets.Far4, 40000, 53, "after"u8);
        client.Send(packet);
        Assert.Equal(packet, Packets.Take(server.Tun(), "the session does not carry data after the rejoin"));
    }

    /// <summary>
    /// A queue that drops right after each rejoin (a server or middlebox that takes it and cuts it) waits longer each
    /// time, 1, 2, 4 s…, instead of a full handshake and CONNECT every second for ever.
    /// </summary>
    [Fact]
    public async Task A_queue_that_drops_right_after_each_rejoin_waits_longer_each_time()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Queues = 2 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Queues = 2 });
        var session = await server.LiveSessionAsync(client.Address, 2);
        var gaps = new List<TimeSpan>();
        var queue = QueueConnection(session, client.Address, 1);
        for (int i = 0; i < 3; i++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            queue.Abort(TunnelEnd.Error);
            var dropped = queue;
            await Eventually.True(() => session.LiveQueues == 2 && TryQueueConnection(session, client.Address, 1) is { } now && now != dropped, $"queue 1 was not joined again ({i})",
                TimeSpan.FromSeconds(30));
            gaps.Add(clock.Elapsed);
            queue = QueueConnection(session, client.Address, 1);
        }
        // About 1, 2 and 4 s; each one at least the wait it was owed.
        Assert.True(gaps[1] >= TimeSpan.FromSeconds(1.9) && gaps[2] >= TimeSpan.FromSeconds(3.9), $"waits: {string.Join(", ", gaps.Select(g => g.TotalSeconds.ToString("0.0")))} s");
    }

    /// <summary>The session's connection of queue <paramref name="queue"/>, found by the flow hash the TUN reader uses.</summary>
    private static Downlink QueueConnection(VpnSession session, System.Net.IPAddress address, int queue) =>
        TryQueueConnection(session, address, queue) ?? throw new InvalidOperationException($"no flow of the session hashes to queue {queue}");

    /// <summary>The same, or null while no flow picks it (a rejoined queue counts as live a moment before flows pick it).</summary>
    private static Downlink? TryQueueConnection(VpnSession session, System.Net.IPAddress address, int queue)
    {
        for (ushort port = 1; port < 2000; port++)
        {
            var probe = Packets.Udp(Packets.Far4, address, port, 40000, [0]);
            Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(probe, out var info));
            if (session.Pick(probe, info) is { Queue: var q } conn && q == queue) return conn;
        }
        return null;
    }
}
