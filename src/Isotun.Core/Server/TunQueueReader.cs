using System.Diagnostics;
using Isotun.Protocol.Cstp;
using Isotun.Transport;
using Isotun.Tun;

namespace Isotun.Server;

/// <summary>
/// The reading side of one TUN queue: a dedicated thread waits for packets and hands each to the tenant's router; and a
/// connection that has just written into the queue may read what that write caused (a ping's reply, say) itself
/// (<see cref="ServeAfterWrite"/>), so an idle answer goes out without waking the thread first.
/// Reading a packet and handing it on are one step under a turn that the thread and a connection take in turn, so
/// packets leave in the order the queue gave them.
/// </summary>
internal sealed class TunQueueReader
{
    /// <summary>Hands a packet read from the queue to the router; true when the buffer was taken along with it.</summary>
    public delegate bool Forward(ITunQueue tun, PacketBuffer buffer, int length);

    private readonly ITunQueue _tun;
    private readonly Forward _forward;
    private readonly Action<string> _failed;
    private readonly int _bufferSize;
    private readonly Lock _turn = new();
    private readonly Thread _thread;
    private volatile bool _waiting;
    private volatile bool _stopping;
    private long _started;
    private long _waitedTicks;
    private long _waitStarted; // when the wait in progress began; 0 while the thread works
    private long _servedAfterWrite;

    /// <param name="bufferSize">Payload room for one read: a super-packet on a TUN with offloads, else the tenant's MTU.</param>
    public TunQueueReader(ITunQueue tun, string name, int bufferSize, Forward forward, Action<string> failed)
    {
        _tun = tun;
        _bufferSize = bufferSize;
        _forward = forward;
        _failed = failed;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
    }

    /// <summary>Packets read by connections right after their writes, not by the thread.</summary>
    public long ServedAfterWrite => Interlocked.Read(ref _servedAfterWrite);

    public void Start() => _thread.Start();

    /// <summary>Stops the thread (its wait for a packet is interrupted); false when it had not ended within <paramref name="wait"/>.</summary>
    public bool Stop(TimeSpan wait)
    {
        _stopping = true;
        _tun.Interrupt();
        return !_thread.IsAlive || _thread.Join(wait);
    }

    /// <summary>
    /// Seconds the thread has run and of them spent busy (not waiting for a packet); null before it started. The wait in
    /// progress counts as waiting: an idle queue's thread may wait for hours (its wait has no timeout, and the
    /// connections serve idle answers themselves).
    /// </summary>
    public (double Busy, double Running)? Sample()
    {
        long start = Volatile.Read(ref _started);
        if (start == 0) return null;
        long now = Stopwatch.GetTimestamp();
        // Read the wait in progress before the total: the thread adds a wait to the total before it clears its start,
        // so a wait that ends meanwhile is counted at most twice (the busy share clamps at 0), never missed.
        long waitStarted = Volatile.Read(ref _waitStarted);
        long waited = Volatile.Read(ref _waitedTicks) + (waitStarted != 0 ? Math.Max(0, now - waitStarted) : 0);
        double running = (now - start) / (double)Stopwatch.Frequency;
        return (Math.Max(0, running - waited / (double)Stopwatch.Frequency), running);
    }

    /// <summary>
    /// Called by a connection about to write into this queue after a quiet spell: when the thread is waiting (the queue
    /// was empty), keeps what the write causes (a ping's reply, which the kernel queues inside the write) from waking it,
    /// for the connection to read and send itself in <see cref="ServeAfterWrite"/>. True when it did; the caller must
    /// then call <see cref="ReleaseWakeups"/>, after its serve, whatever happens. Otherwise the kernel wakes the thread,
    /// often on another CPU, inside that write, only for it to find the queue already read: a cost on every idle ping.
    /// </summary>
    public bool HoldWakeups()
    {
        if (!_waiting) return false;
        _tun.SuppressWakeups(true);
        return true;
    }

    /// <summary>Ends a <see cref="HoldWakeups"/>: a packet that came meanwhile and is still there wakes the thread now.</summary>
    public void ReleaseWakeups() => _tun.SuppressWakeups(false);

    /// <summary>
    /// Called by a connection right after it wrote into this queue: when the thread is waiting (the queue was empty),
    /// reads one packet, if one is there now, and forwards it from the caller's thread; anything after it stays with the
    /// thread, so a burst does not hold the caller (a socket's thread). Does nothing when the thread is busy, so under
    /// load the thread keeps the reading to itself.
    /// </summary>
    public void ServeAfterWrite()
    {
        if (!_waiting || !_turn.TryEnter()) return;
        PacketBuffer? buffer = null;
        try
        {
            int n = ReadOne(ref buffer);
            if (n > 0)
            {
                Interlocked.Increment(ref _servedAfterWrite);
                if (_forward(_tun, buffer!, n)) buffer = null;
            }
        }
        catch (TunException)
        {
            // The thread meets the same failure on its next read and reports it.
        }
        finally
        {
            _turn.Exit();
            buffer?.Return();
        }
    }

    /// <summary>Reads one packet already waiting, into <paramref name="buffer"/> (rented when null); its length, 0, or -1 once closed.</summary>
    private int ReadOne(ref PacketBuffer? buffer)
    {
        buffer ??= PacketBuffer.Rent(_bufferSize);
        Memory<byte> space = buffer.Array;
        Span<int> size = stackalloc int[1];
        int read = _tun.Read(new ReadOnlySpan<Memory<byte>>(in space), size, CstpFrame.HeaderLength);
        return read > 0 ? size[0] : read;
    }

    private void Run()
    {
        Volatile.Write(ref _started, Stopwatch.GetTimestamp());
        PacketBuffer? buffer = null;
        try
        {
            while (!_stopping)
            {
                int n;
                lock (_turn)
                {
                    n = ReadOne(ref buffer);
                    if (n > 0 && _forward(_tun, buffer!, n)) buffer = null;
                }
                if (n < 0) break;
                if (n > 0) continue;
                long before = Stopwatch.GetTimestamp();
                Volatile.Write(ref _waitStarted, before);
                _waiting = true;
                // No timeout: an idle queue costs no wake-ups; Stop interrupts the wait. Then the read says what
                // there is: a packet, nothing (interrupted), or closed.
                _tun.WaitReadable(Timeout.Infinite);
                _waiting = false;
                Interlocked.Add(ref _waitedTicks, Stopwatch.GetTimestamp() - before);
                Volatile.Write(ref _waitStarted, 0);
            }
        }
        catch (TunException e)
        {
            _failed(e.Message);
        }
        finally
        {
            buffer?.Return();
        }
    }
}
