using Isotun.Protocol.Ip;

namespace Isotun.Server;

/// <summary>
/// Which of a session's connections (its queues) carries each flow towards the client. Both ends' kernels follow that
/// choice: the client writes a packet into the TUN queue of the connection it came on, and its kernel sends the flow's
/// next packets from that queue, so a flow's two directions share one connection and one TUN ring on each end.
/// <para>
/// A flow keeps its connection while its packets follow each other closely, so its packets stay in order, and after a
/// pause too when its last run was long (<see cref="LongRun"/>: a transfer). A flow that is new, or comes back after a
/// pause (<see cref="Pause"/>) from a short run, goes where its hash says, unless that connection is busy with other
/// traffic and another is much less busy: then it goes there. So a ping or a keystroke does not queue behind a bulk
/// transfer that happens to hash to the same connection (its standing queue in that connection's TUN ring and socket is
/// milliseconds long), and a second bulk flow takes the idle connection. While every connection is quiet, or all are
/// about as busy, a flow goes where its hash says, as before.
/// </para>
/// <para>
/// Hand-written for the hot path: one small table per session with several connections (not made for one), no lock
/// and no allocation per packet; a lock only where a flow is placed. Two TUN readers may place the same flow at once:
/// the later one wins, and at worst one packet of it goes on the other connection.
/// </para>
/// </summary>
internal sealed class FlowSteering
{
    /// <summary>A flow silent this long may move: what it sent before has long left the queues.</summary>
    public const long Pause = 20; // ms

    /// <summary>
    /// A flow whose last run (packets without a pause) was this long keeps its connection when it comes back: it was a
    /// transfer, whose data the other way may still be queued on that connection's side (an upload's data at the client,
    /// while the server sees only its acknowledgements). Only short runs move: pings, queries, keystrokes.
    /// </summary>
    public const int LongRun = 32;

    /// <summary>Below this rate a connection counts as quiet (1 MB/s): no flow moves off it.</summary>
    public const long QuietBytesPerSecond = 1_000_000;

    private const int Slots = 128; // a power of two; flows of one client, not of a tenant
    private const long SampleEvery = 50; // ms between rate samples of the connections

    private struct Flow
    {
        public uint Hash;
        public int Queue; // Downlink.Queue, or -1 while the slot is empty
        public long Seen; // ms, last packet
        public long Since; // ms, when it was placed
        public long Bytes; // since it was placed
        public int Packets; // since it was placed
    }

    private readonly Flow[] _flows = new Flow[Slots];
    private readonly Lock _gate = new();
    // By Downlink.Queue: the bytes the connection had moved at the last sample, when, and its rate then (bytes/s).
    private readonly long[] _sampledBytes = new long[Protocol.Cstp.IsotunExtensions.MaxQueues];
    private readonly long[] _sampledAt = new long[Protocol.Cstp.IsotunExtensions.MaxQueues];
    private readonly long[] _rate = new long[Protocol.Cstp.IsotunExtensions.MaxQueues];

    public FlowSteering()
    {
        for (int i = 0; i < Slots; i++) _flows[i].Queue = -1;
    }

    /// <summary>Placements of a flow (new, or back after a pause) off the connection its hash gives.</summary>
    public long Moved => Interlocked.Read(ref _moved);

    private long _moved;

    /// <summary>The index in <paramref name="live"/> (two or more connections) for a packet of <paramref name="bytes"/> of flow <paramref name="hash"/>.</summary>
    public int Pick(uint hash, int bytes, Downlink[] live, long now)
    {
        ref var flow = ref _flows[hash & (Slots - 1)];
        if (flow.Hash == hash && now - flow.Seen < Pause && IndexOf(live, flow.Queue) is var kept and >= 0)
        {
            if (flow.Seen != now) flow.Seen = now;
            flow.Bytes += bytes;
            flow.Packets++;
            return kept;
        }
        // Another flow busy in this slot keeps it; this one goes by its hash, which never changes under it.
        if (flow.Hash != hash && flow.Queue >= 0 && now - flow.Seen < Pause) return FlowHash.Pick(hash, live.Length);
        lock (_gate)
        {
            // Where the flow was, when it comes back to its slot and that connection is still there.
            int was = flow.Hash == hash ? IndexOf(live, flow.Queue) : -1;
            int pick = was >= 0 && flow.Packets >= LongRun
                ? was
                // A short run's own rate, pause included: its share of its connection's load is not "others".
                : Place(hash, was, was >= 0 ? flow.Bytes * 1000 / Math.Max(1, now - flow.Since) : 0, live, now);
            flow = new Flow { Hash = hash, Queue = live[pick].Queue, Seen = now, Since = now, Bytes = bytes, Packets = 1 };
            return pick;
        }
    }

    /// <summary>The index for a flow that was at index <paramref name="was"/> (-1: nowhere yet), sending <paramref name="ownRate"/> there.</summary>
    private int Place(uint hash, int was, long ownRate, Downlink[] live, long now)
    {
        int hashed = FlowHash.Pick(hash, live.Length);
        int current = was >= 0 ? was : hashed;
        int lightest = current;
        for (int i = 0; i < live.Length; i++)
        {
            Sample(live[i], now);
            if (_rate[live[i].Queue] < _rate[live[lightest].Queue]) lightest = i;
        }
        long others = _rate[live[current].Queue] - (was >= 0 ? ownRate : 0);
        int pick = others < QuietBytesPerSecond || others <= 2 * _rate[live[lightest].Queue] ? current : lightest;
        if (pick != hashed) Interlocked.Increment(ref _moved);
        return pick;
    }

    /// <summary>Updates a connection's rate when its last sample is old enough (under the lock).</summary>
    private void Sample(Downlink link, long now)
    {
        int q = link.Queue;
        long moved = Volatile.Read(ref link.RxBytes) + Volatile.Read(ref link.Writer.BytesWritten);
        long elapsed = now - _sampledAt[q];
        if (elapsed < SampleEvery && _sampledAt[q] != 0) return;
        // A connection new in this queue (a rejoin) has counted from zero: no rate from the old one's bytes.
        _rate[q] = _sampledAt[q] != 0 && moved >= _sampledBytes[q] ? (moved - _sampledBytes[q]) * 1000 / elapsed : 0;
        _sampledBytes[q] = moved;
        _sampledAt[q] = now;
    }

    private static int IndexOf(Downlink[] live, int queue)
    {
        if (queue < 0) return -1;
        for (int i = 0; i < live.Length; i++)
            if (live[i].Queue == queue) return i;
        return -1;
    }
}
