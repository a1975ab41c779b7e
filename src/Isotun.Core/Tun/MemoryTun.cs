using System.Collections.Concurrent;

namespace Isotun.Tun;

/// <summary>
/// The in-memory twin of a TUN device, for tests that run a whole server and client in one process: a bounded
/// queue per TUN queue for what the "host" sends into the tunnel (<see cref="Inject"/>), and one bounded queue,
/// shared by all TUN queues as the kernel's stack is, for what the data path wrote (<see cref="TryTake"/>).
/// Packets are copied in and out (a test double, not a hot path); each carries the virtio-net header when
/// <see cref="Offload"/> is on.
/// </summary>
public sealed class MemoryTun : IDisposable
{
    private readonly BlockingCollection<byte[]> _written;

    public MemoryTun(string name, int queues = 1, int mtu = 1500, bool offload = false, bool uso = false, int capacity = 1024)
    {
        if (queues < 1) throw new ArgumentOutOfRangeException(nameof(queues), "a TUN has at least one queue");
        Name = name;
        _written = new BlockingCollection<byte[]>(capacity);
        Queues = new MemoryTunQueue[queues];
        for (int i = 0; i < queues; i++) Queues[i] = new MemoryTunQueue(this, i, mtu, offload, uso, capacity);
    }

    public string Name { get; }
    public bool Offload => Queues[0].Offload;
    public MemoryTunQueue[] Queues { get; }

    /// <summary>
    /// The host answering at once, as the kernel answers a ping to a local address: called with each packet the data
    /// path writes (as written, virtio header included on an offload TUN); a non-null answer is queued for reading on
    /// the same TUN queue before the write returns.
    /// </summary>
    public Func<byte[], byte[]?>? Answer { get; set; }

    /// <summary>Packets the data path wrote and no one has taken yet.</summary>
    public int Pending => _written.Count;

    /// <summary>
    /// Hands <paramref name="packet"/> (with its virtio header on an offload TUN) to the data path through TUN
    /// queue <paramref name="queue"/>, as the kernel would route a local packet into the tunnel. False when that
    /// queue is full or closed.
    /// </summary>
    public bool Inject(ReadOnlySpan<byte> packet, int queue = 0) => Queues[queue].Inject(packet);

    /// <summary>Takes the next packet the data path wrote (any queue), waiting up to <paramref name="timeout"/>.</summary>
    public bool TryTake(out byte[] packet, TimeSpan timeout) => _written.TryTake(out packet!, timeout);

    /// <summary>Takes every packet written so far without waiting.</summary>
    public List<byte[]> Drain()
    {
        var all = new List<byte[]>();
        while (_written.TryTake(out var p)) all.Add(p);
        return all;
    }

    internal bool Deliver(ReadOnlySpan<byte> packet) => _written.TryAdd(packet.ToArray());

    /// <summary>Closes every queue: blocked readers return -1.</summary>
    public void Dispose()
    {
        foreach (var q in Queues) q.Dispose();
    }
}
