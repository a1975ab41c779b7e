using System.Threading.Channels;

namespace Isotun.Tun;

/// <summary>One queue of a <see cref="MemoryTun"/>: reads what the test injected into it, writes into the device's shared queue.</summary>
public sealed class MemoryTunQueue : ITunQueue
{
    private readonly MemoryTun _device;
    private readonly Channel<byte[]> _injected;
    private volatile bool _closed;
    private volatile string? _failure;
    private readonly TaskCompletionSource _interrupted = new(TaskCreationOptions.RunContinuationsAsynchronously);
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

    internal bool Inject(ReadOnlySpan<byte> packet) => !_closed && _injected.Writer.TryWrite(packet.ToArray());

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
        if (_closed || _injected.Reader.Count > 0 || _interrupted.Task.IsCompleted) return true;
        // Done within the time: a packet came, the queue was closed, or the wait was interrupted.
        return Task.WhenAny(_injected.Reader.WaitToReadAsync().AsTask(), _interrupted.Task).Wait(timeoutMs);
    }

    public void Interrupt() => _interrupted.TrySetResult();

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
    }
}
