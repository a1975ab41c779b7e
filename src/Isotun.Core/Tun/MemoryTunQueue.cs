using System.Threading.Channels;

namespace Isotun.Tun;

/// <summary>One queue of a <see cref="MemoryTun"/>: reads what the test injected into it, writes into the device's shared queue.</summary>
public sealed class MemoryTunQueue : ITunQueue
{
    private readonly MemoryTun _device;
    private readonly Channel<byte[]> _injected;
    private volatile bool _closed;
    private volatile string? _failure;
    // A waiting reader sleeps on this gate: pulsed by a packet injected while wake-ups are not suppressed, by lifting
    // the suppression, by an interrupt and by closing.
    private readonly object _gate = new();
    private bool _interrupted;
    private int _suppressed;
    private long _reads, _writes, _refused, _waits;

    internal MemoryTunQueue(MemoryTun device, int index, int mtu, bool offload, bool uso, int capacity)
    {
        _device = device;
        Index = index;
        Mtu = mtu;
        Offload = offload;
        Uso = offload && uso;
        _injected = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.Wait });
    }

    public string Name => _device.Name;
    public int Index { get; }
    public int Mtu { get; }
    public bool Offload { get; }
    public bool Uso { get; }
    public bool IsClosed => _closed;

    /// <summary>Packets the data path read from this queue.</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>Packets the data path wrote through this queue.</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Writes refused because the device's queue was full or this queue closed.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Packets injected and not read yet.</summary>
    public int Waiting => _injected.Reader.Count;

    internal bool Inject(ReadOnlySpan<byte> packet)
    {
        if (_closed || !_injected.Writer.TryWrite(packet.ToArray())) return false;
        Wake(unlessSuppressed: true);
        return true;
    }

    private void Wake(bool unlessSuppressed)
    {
        lock (_gate)
        {
            if (unlessSuppressed && _suppressed > 0) return;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Makes every later read fail as a kernel TUN's does once its device is gone (deleted under it).</summary>
    public void Fail(string message)
    {
        _failure = message;
        Interrupt();
    }

    public int Read(ReadOnlySpan<Memory<byte>> bufs, Span<int> sizes, int offset)
    {
        if (_failure is { } failure) throw new TunException(failure);
        int count = 0;
        while (count < bufs.Length)
        {
            if (_closed) return count > 0 ? count : -1;
            if (!_injected.Reader.TryRead(out var packet)) return count;
            // Too long for the buffer: cut, as a short read of the kernel's would be.
            var room = bufs[count].Span[offset..];
            int n = Math.Min(packet.Length, room.Length);
            packet.AsSpan(0, n).CopyTo(room);
            sizes[count++] = n;
            Interlocked.Increment(ref _reads);
        }
        return count;
    }

    public bool WaitReadable(int timeoutMs)
    {
        Interlocked.Increment(ref _waits);
        long deadline = timeoutMs < 0 ? long.MaxValue : Environment.TickCount64 + timeoutMs;
        lock (_gate)
        {
            // Done within the time: a packet came (and no suppression kept it from ending the wait), the queue was
            // closed or failed, or the wait was interrupted.
            while (!(_closed || _interrupted || _failure is not null || (_suppressed == 0 && _injected.Reader.Count > 0)))
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0) return false;
                Monitor.Wait(_gate, (int)Math.Min(left, int.MaxValue));
            }
            return true;
        }
    }

    public void Interrupt()
    {
        lock (_gate)
        {
            _interrupted = true;
            Monitor.PulseAll(_gate);
        }
    }

    public void SuppressWakeups(bool suppress)
    {
        lock (_gate)
        {
            _suppressed += suppress ? 1 : -1;
            if (_suppressed == 0) Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Calls of <see cref="WaitReadable"/> so far: each is a wake-up of the thread that reads the queue.</summary>
    public long Waits => Interlocked.Read(ref _waits);

    public int Write(ReadOnlySpan<ReadOnlyMemory<byte>> bufs, int offset)
    {
        int written = 0;
        foreach (var packet in bufs)
        {
            // Counted before it is delivered: a reader that took the packet then sees it counted.
            Interlocked.Increment(ref _writes);
            if (!_closed && _device.Deliver(packet.Span[offset..]))
            {
                written++;
                if (_device.Answer?.Invoke(packet.Span[offset..].ToArray()) is { } answer) Inject(answer);
            }
            else
            {
                Interlocked.Decrement(ref _writes);
                Interlocked.Increment(ref _refused);
            }
        }
        return written;
    }

    public void Dispose()
    {
        _closed = true;
        _injected.Writer.TryComplete();
        Wake(unlessSuppressed: false);
    }
}
