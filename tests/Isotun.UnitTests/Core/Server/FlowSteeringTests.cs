using Isotun.Protocol.Ip;
using Isotun.Server;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// How a session's flows are spread over its connections: by hash while the connections are quiet, each flow kept on
/// its connection while it sends, and a new or paused flow kept off a connection that other traffic keeps busy. The
/// clock is given, and a connection's traffic is its byte counters.
/// </summary>
public sealed class FlowSteeringTests
{
    private static Downlink Link(int queue) => new(queue, 1400, false, false, new FrameWriter(Stream.Null));

    /// <summary>The <paramref name="nth"/> flow hash (from 0) that hashes to <paramref name="index"/> of <paramref name="count"/>.</summary>
    private static uint HashTo(int index, int count, int nth = 0)
    {
        for (uint h = 0x9e3779b9; ; h += 0x9e3779b9)
            if (FlowHash.Pick(h, count) == index && nth-- == 0) return h;
    }

    /// <summary>A bulk flow on <paramref name="link"/> for <paramref name="ms"/> ms: a 64 KiB packet every 5 ms, each counted on the link.</summary>
    private static long Bulk(FlowSteering steering, uint flow, Downlink link, Downlink[] live, long now, int ms)
    {
        for (long end = now + ms; now < end; now += 5)
        {
            Assert.Same(link, live[steering.Pick(flow, 65536, live, now)]);
            link.RxBytes += 65536;
        }
        return now;
    }

    [Fact]
    public void While_the_connections_are_quiet_every_flow_goes_where_its_hash_says()
    {
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1), Link(2)];
        for (int i = 0; i < 300; i++)
        {
            uint h = (uint)i * 0x9e3779b9;
            Assert.Equal(FlowHash.Pick(h, 3), steering.Pick(h, 100, live, 1000 + i));
        }
        Assert.Equal(0, steering.Moved);
    }

    [Fact]
    public void A_ping_whose_hash_meets_a_bulk_transfer_goes_on_the_quiet_connection()
    {
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1)];
        uint bulk = HashTo(0, 2), ping = HashTo(0, 2, nth: 1);
        long now = Bulk(steering, bulk, live[0], live, 1000, 200); // 13 MB/s on connection 0

        // Pings 200 ms apart, each a flow come back after a pause: all on connection 1.
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(1, steering.Pick(ping, 84, live, now));
            now = Bulk(steering, bulk, live[0], live, now, 200);
        }
        Assert.Equal(5, steering.Moved);

        // The transfer itself, paused and back, stays where it is.
        now += 50;
        Assert.Equal(0, steering.Pick(bulk, 65536, live, now));
    }

    [Fact]
    public void An_upload_whose_acknowledgements_pause_keeps_its_connection()
    {
        // The server sees an upload as small acknowledgements going out, while the data coming in keeps the
        // connection busy. A pause in the acknowledgements must not move the flow: its data may still be queued at the
        // client on that connection's side, and would arrive out of order behind data sent on the other.
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1)];
        uint upload = HashTo(0, 2);
        long now = 1000;
        for (int pause = 0; pause < 5; pause++)
        {
            for (int i = 0; i < 100; i++, now += 2)
            {
                Assert.Equal(0, steering.Pick(upload, 52, live, now));
                live[0].RxBytes += 64 * 1024;
            }
            now += 40;
        }
        Assert.Equal(0, steering.Pick(upload, 52, live, now));
        Assert.Equal(0, steering.Moved);
    }

    [Fact]
    public void A_short_run_alone_on_its_connection_stays_there_after_its_pauses()
    {
        // A flow of bursts (20 packets, then 30 ms of nothing) that alone keeps its connection above the quiet rate is
        // not moved by its own traffic.
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1)];
        uint flow = HashTo(1, 2);
        long now = 1000;
        for (int burst = 0; burst < 10; burst++, now += 30)
            for (int i = 0; i < 20; i++)
            {
                Assert.Equal(1, steering.Pick(flow, 1400, live, now));
                live[1].Writer.BytesWritten += 1400;
            }
        Assert.Equal(0, steering.Moved);
    }

    [Fact]
    public void A_second_bulk_transfer_takes_the_quiet_connection_and_each_stays_put()
    {
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1)];
        uint first = HashTo(0, 2), second = HashTo(0, 2, nth: 1);
        long now = Bulk(steering, first, live[0], live, 1000, 200);
        Assert.Equal(1, steering.Pick(second, 65536, live, now));
        // Both run at once: each keeps its connection, though by then both connections are busy.
        for (int i = 0; i < 40; i++, now += 5)
        {
            Assert.Equal(0, steering.Pick(first, 65536, live, now));
            live[0].RxBytes += 65536;
            Assert.Equal(1, steering.Pick(second, 65536, live, now));
            live[1].RxBytes += 65536;
        }
        // A new flow between two equally busy connections goes by its hash.
        uint third = HashTo(0, 2, nth: 2), fourth = HashTo(1, 2, nth: 2);
        Assert.Equal(0, steering.Pick(third, 100, live, now));
        Assert.Equal(1, steering.Pick(fourth, 100, live, now));
    }

    [Fact]
    public void A_flow_keeps_its_connection_while_it_sends_even_when_another_turns_busy()
    {
        var steering = new FlowSteering();
        Downlink[] live = [Link(0), Link(1)];
        uint flow = HashTo(0, 2), bulk = HashTo(0, 2, nth: 1);
        long now = 1000;
        Assert.Equal(0, steering.Pick(flow, 1400, live, now));
        // A transfer starts on the same connection; the flow sends every 10 ms meanwhile (a run shorter than
        // FlowSteering.LongRun) and is not moved.
        for (int i = 0; i < 20; i++)
        {
            now = Bulk(steering, bulk, live[0], live, now, 10);
            Assert.Equal(0, steering.Pick(flow, 1400, live, now));
        }
        Assert.Equal(0, steering.Moved);
        // Once it pauses, it may move.
        now = Bulk(steering, bulk, live[0], live, now, 100);
        Assert.Equal(1, steering.Pick(flow, 1400, live, now));
    }

    [Fact]
    public void A_flow_whose_connection_left_the_group_is_placed_again()
    {
        var steering = new FlowSteering();
        Downlink a = Link(0), b = Link(1), c = Link(2);
        uint flow = HashTo(1, 3);
        Assert.Same(b, new[] { a, b, c }[steering.Pick(flow, 100, [a, b, c], 1000)]);
        Downlink[] left = [a, c];
        int next = steering.Pick(flow, 100, left, 1001);
        Assert.Equal(FlowHash.Pick(flow, 2), next);
        Assert.Equal(next, steering.Pick(flow, 100, left, 1002));
    }
}
