using System.Buffers.Binary;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Server;
using Isotun.State;
using Isotun.Transport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A session's group of connections (the `queues` extension): the primary starts a group, queues join it, packets
/// pick a connection by flow, and the group lives and dies with its primary. No sockets: the rules alone.
/// </summary>
public class SessionQueuesTests
{
    private readonly TenantRuntime _tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/24", null), new MemoryStateStore());

    private VpnSession NewSession()
    {
        var s = new VpnSession(Guid.NewGuid(), _tenant, "alice", DateTimeOffset.UtcNow.AddHours(1));
        Assert.True(_tenant.TryLease(s, null));
        return s;
    }

    private static Downlink Connection(VpnSession s, int queue) => Tunnel(s, queue).Link;

    private static TunnelConnection Tunnel(VpnSession s, int queue)
    {
        var stream = new MemoryStream();
        return new TunnelConnection(queue + 100, s, stream, new ConnectionReader(stream), 1400, IsotunExtension.Queues, NullLogger.Instance, CancellationToken.None, queue);
    }

    /// <summary>A session with a whole group attached: the primary, then queues 1…<paramref name="queues"/>-1.</summary>
    private (VpnSession Session, Downlink[] Group) WholeGroup(int queues)
    {
        var s = NewSession();
        var group = Enumerable.Range(0, queues).Select(q => Connection(s, q)).ToArray();
        s.AttachPrimary(group[0], queues);
        for (int q = 1; q < queues; q++) Assert.True(s.TryAttachQueue(q, group[q]));
        return (s, group);
    }

    private static byte[] Tcp(ushort sport)
    {
        var p = new byte[40];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), 40);
        p[9] = 6;
        p[12] = 198; p[13] = 18; p[14] = 21; p[15] = 2;
        p[16] = 10; p[17] = 10; p[18] = 0; p[19] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), 5201);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), sport);
        return p;
    }

    private static Downlink? Pick(VpnSession s, byte[] packet)
    {
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(packet, out var info));
        return s.Pick(packet, info);
    }

    [Fact]
    public void A_primary_routes_the_session_and_queues_share_its_flows_each_flow_on_one_connection()
    {
        var s = NewSession();
        Assert.Null(Pick(s, Tcp(1)));
        var primary = Connection(s, 0);
        s.AttachPrimary(primary, 3);
        Assert.Null(primary.EndReason);
        Assert.Same(s, _tenant.RouteTo(s.AddressKey));
        Assert.Equal((primary, 1, 3), (s.Connection, s.LiveQueues, s.QueueCount));
        Assert.Same(primary, Pick(s, Tcp(1)));

        var q1 = Connection(s, 1);
        var q2 = Connection(s, 2);
        Assert.True(s.TryAttachQueue(1, q1));
        Assert.True(s.TryAttachQueue(2, q2));
        Assert.Equal<TunnelEnd?>([null, null, null], [primary.EndReason, q1.EndReason, q2.EndReason]); // nothing replaced
        Assert.Equal(3, s.LiveQueues);
        Assert.Same(primary, s.Connection);

        var used = new HashSet<Downlink>();
        for (ushort port = 40000; port < 40100; port++)
        {
            var first = Pick(s, Tcp(port))!;
            used.Add(first);
            // Every packet of the flow goes the same way.
            for (int i = 0; i < 3; i++) Assert.Same(first, Pick(s, Tcp(port)));
        }
        Assert.Equal(3, used.Count);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(-1)]
    public void A_queue_index_outside_the_group_is_refused(int index)
    {
        var s = NewSession();
        s.AttachPrimary(Connection(s, 0), 3);
        Assert.False(s.TryAttachQueue(index, Connection(s, 1)));
        Assert.Equal(1, s.LiveQueues);
    }

    [Fact]
    public void A_queue_without_a_primary_is_refused()
    {
        var s = NewSession();
        Assert.False(s.TryAttachQueue(1, Connection(s, 1)));
        Assert.Null(s.Connection);
        Assert.Null(_tenant.RouteTo(s.AddressKey));
    }

    [Fact]
    public void A_second_connection_at_one_index_replaces_the_first()
    {
        var s = NewSession();
        s.AttachPrimary(Connection(s, 0), 2);
        var a = Connection(s, 1);
        var b = Connection(s, 1);
        Assert.True(s.TryAttachQueue(1, a));
        Assert.True(s.TryAttachQueue(1, b));
        Assert.Equal(TunnelEnd.Replaced, a.EndReason);
        Assert.Null(b.EndReason);
        Assert.Equal(2, s.LiveQueues);
        // The replaced one ending later changes nothing.
        Assert.False(s.Detach(a));
        Assert.Null(b.EndReason);
        Assert.Equal(2, s.LiveQueues);
    }

    [Fact]
    public void A_queue_ending_alone_leaves_the_session_on_the_others()
    {
        var (s, g) = WholeGroup(2);
        var (primary, q1) = (g[0], g[1]);
        Assert.False(s.Detach(q1));
        Assert.Null(primary.EndReason);
        Assert.Equal(1, s.LiveQueues);
        for (ushort port = 1; port < 50; port++) Assert.Same(primary, Pick(s, Tcp(port)));
        Assert.Same(s, _tenant.RouteTo(s.AddressKey));
    }

    [Fact]
    public void The_primary_ending_takes_the_group_and_the_routes_with_it()
    {
        var (s, g) = WholeGroup(3);
        var (primary, q1, q2) = (g[0], g[1], g[2]);
        Assert.True(s.Detach(primary));
        Assert.Equal<TunnelEnd?>([TunnelEnd.PrimaryEnded, TunnelEnd.PrimaryEnded], [q1.EndReason, q2.EndReason]);
        Assert.Equal(0, s.LiveQueues);
        Assert.Null(s.Connection);
        Assert.Null(Pick(s, Tcp(1)));
        Assert.Null(_tenant.RouteTo(s.AddressKey));
        // The orphans ending afterwards change nothing.
        Assert.False(s.Detach(q1));
    }

    [Fact]
    public void A_new_primary_starts_a_new_group_and_hands_back_the_old_one_and_the_old_primary_ending_keeps_its_routes()
    {
        var (s, g) = WholeGroup(2);
        var (old, oldQueue) = (g[0], g[1]);

        var fresh = Connection(s, 0);
        s.AttachPrimary(fresh, 4);
        Assert.Equal<TunnelEnd?>([TunnelEnd.Replaced, TunnelEnd.Replaced, null], [old.EndReason, oldQueue.EndReason, fresh.EndReason]);
        Assert.Equal((fresh, 1, 4), (s.Connection, s.LiveQueues, s.QueueCount));
        // The replaced primary ends after the new one attached: the session stays routed.
        Assert.False(s.Detach(old));
        Assert.Null(fresh.EndReason);
        Assert.Same(s, _tenant.RouteTo(s.AddressKey));
        Assert.Same(fresh, s.Connection);
    }

    [Fact]
    public async Task A_primary_that_ends_while_a_queue_is_ending_too_still_ends_the_group()
    {
        // A client that stops closes all its connections at once. Here the queue has finished its run (its peer
        // closed) but is not detached yet when the primary's DISCONNECT ends the group: the group must still end
        // (the caller then logs the session off), and aborting the finished queue is a no-op.
        var s = NewSession();
        var (primary, queueTunnel) = (Connection(s, 0), Tunnel(s, 1));
        var queue = queueTunnel.Link;
        s.AttachPrimary(primary, 2);
        Assert.True(s.TryAttachQueue(1, queue));

        Assert.Equal(TunnelEnd.PeerClosed, await queueTunnel.RunAsync().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(s.Detach(primary));
        Assert.Equal(TunnelEnd.PeerClosed, queue.EndReason);
        Assert.Null(_tenant.RouteTo(s.AddressKey));

        queue.Abort(TunnelEnd.Replaced);
        Assert.False(s.Detach(queue));
        Assert.Equal(TunnelEnd.PeerClosed, queue.EndReason);
    }

    [Fact]
    public void A_reload_that_changes_the_queue_count_is_refused_until_a_restart()
    {
        var reason = _tenant.TryApply(_tenant.Config with { Queues = _tenant.Config.Queues + 1 });
        Assert.Equal("changed queues: restart the server to apply", reason);
        Assert.Null(_tenant.TryApply(_tenant.Config with { Dpd = _tenant.Config.Dpd + 1 }));
    }
}
