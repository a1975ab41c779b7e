using System.Threading.Channels;

namespace Isotun.Transport;

/// <summary>What became of a frame offered to a <see cref="FrameWriter"/>.</summary>
public enum EnqueueResult : byte
{
    Queued,
    /// <summary>The queue holds as many frames as it may.</summary>
    QueueFull,
    /// <summary>The session's <see cref="MemoryBudget"/> has no room for the frame's buffer.</summary>
    OverBudget,
    /// <summary>The queue is closed: its connection is ending (not a peer that cannot keep up).</summary>
    Closed,
}

/// <summary>
/// The single writer of one TLS connection, fed by a bounded queue. Towards a stock peer every frame
/// goes out in its own <see cref="Stream.WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>, so it
/// becomes exactly one TLS record: openconnect and ocserv both require one CSTP frame per record.
/// </summary>
public sealed class FrameWriter
{
    public const int DefaultQueueDepth = 1024;

    private readonly Stream _stream;
    private readonly Channel<PacketBuffer> _queue;

    /// <param name="inline">
    /// When the writer is parked, the thread that queues a frame runs the writer itself until the queue is empty
    /// or the socket is full (then the write goes on asynchronously), instead of waking a pool thread: no hand-off
    /// per burst. Used for GSO connections, where a frame is usually a whole super-packet: by the client's TUN
    /// threads, and by the server's TUN readers, which then encrypt for the sessions they serve in turn. Plain
    /// connections keep the pooled writer, which packs the frames queued meanwhile into one send.
    /// </param>
    public FrameWriter(Stream stream, int queueDepth = DefaultQueueDepth, bool inline = false)
    {
        _stream = stream;
        Capacity = queueDepth;
        _queue = Channel.CreateBounded<PacketBuffer>(new BoundedChannelOptions(queueDepth)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
            AllowSynchronousContinuations = inline,
        });
    }

    /// <summary>Bytes and frames actually written, for metrics.</summary>
    public long BytesWritten;
    public long FramesWritten;

    /// <summary>Frames written and flushed to the stream below (so on their way to the peer).</summary>
    public long FramesFlushed;

    /// <summary>
    /// When the write or flush under way began (<see cref="Environment.TickCount64"/>), 0 when none is: a peer that stops
    /// reading holds one for ever, and the dead-peer check reads that here.
    /// </summary>
    public long WriteSince;

    /// <summary>Optional shaping of data frames (per-user rate limit); frames wait in the queue meanwhile.</summary>
    public TokenBucket? Limiter { get; init; }

    /// <summary>Frames waiting to be written (takes the queue's lock: for scrapes and timers, not per packet).</summary>
    public int Queued => _queue.Reader.Count;

    /// <summary>How many frames the queue holds at most.</summary>
    public int Capacity { get; }

    /// <summary>The most frames the writer found waiting at once when it woke (a backlog high-water mark).</summary>
    public int HighWater;

    /// <summary>
    /// The session's budget for the buffers of queued frames, shared by its connections; null for none (the client,
    /// whose TUN readers wait for room instead of dropping).
    /// </summary>
    public MemoryBudget? Budget { get; init; }

    /// <summary>
    /// Queues a frame unless the queue is full or closed, or its buffer does not fit the <see cref="Budget"/>: then
    /// the caller counts the drop by the reason returned, and returns the buffer.
    /// </summary>
    public EnqueueResult Offer(PacketBuffer frame)
    {
        if (Budget is not { } budget) return _queue.Writer.TryWrite(frame) ? EnqueueResult.Queued : Refused;
        int size = frame.Array.Length;
        if (!budget.TryTake(size)) return EnqueueResult.OverBudget;
        if (_queue.Writer.TryWrite(frame)) return EnqueueResult.Queued;
        budget.Give(size);
        return Refused;
    }

    /// <summary>Queues a frame; false when it was refused (see <see cref="Offer"/>).</summary>
    public bool TryEnqueue(PacketBuffer frame) => Offer(frame) == EnqueueResult.Queued;

    /// <summary>Queues a control frame, waiting for room (control frames must not be dropped, so they take from the budget regardless).</summary>
    public async ValueTask EnqueueAsync(PacketBuffer frame, CancellationToken ct)
    {
        Budget?.Take(frame.Array.Length);
        try
        {
            await _queue.Writer.WriteAsync(frame, ct).ConfigureAwait(false);
        }
        catch
        {
            Budget?.Give(frame.Array.Length);
            throw;
        }
    }

    /// <summary>Takes the next queued frame, giving its buffer's bytes back to the budget.</summary>
    private bool TryDequeue(ChannelReader<PacketBuffer> reader, out PacketBuffer frame)
    {
        if (!reader.TryRead(out frame!)) return false;
        Budget?.Give(frame.Array.Length);
        return true;
    }

    /// <summary>Blocks a dedicated (non-pool) thread until the queue has room; false on timeout or when closed.</summary>
    public bool WaitForRoom(TimeSpan timeout)
    {
        var wait = _queue.Writer.WaitToWriteAsync();
        if (wait.IsCompleted) return wait.Result;
        var task = wait.AsTask();
        return task.Wait(timeout) && task.Result;
    }

    public void Complete()
    {
        _closed = true;
        _queue.Writer.TryComplete();
    }

    private volatile bool _closed;

    /// <summary>Why a frame the queue did not take was refused: closed, or full.</summary>
    private EnqueueResult Refused => _closed ? EnqueueResult.Closed : EnqueueResult.QueueFull;

    /// <summary>
    /// Closes the queue of a writer that never ran (<see cref="RunAsync"/> is what drains it), and gives back what
    /// waited there: the buffers, and their bytes to the <see cref="Budget"/>.
    /// </summary>
    public void Discard()
    {
        Complete();
        while (TryDequeue(_queue.Reader, out var left)) left.Return();
    }

    /// <summary>
    /// Negotiated with Isotun peers only: frames already waiting in the queue are packed into one write of up
    /// to <see cref="BatchBytes"/> (SslStream then emits full 16 KiB records). Nothing waits for a batch to
    /// fill, so an idle connection adds no latency.
    /// </summary>
    public bool Batching { get; init; }

    public const int BatchBytes = 256 * 1024;

    /// <summary>Frames this large are written from their own buffer rather than copied into the batch.</summary>
    public const int LargeFrame = 16 * 1024;

    public async Task RunAsync(CancellationToken ct)
    {
        var reader = _queue.Reader;
        byte[]? batch = null; // rented on first use: idle sessions hold no batch buffer
        // The wait below takes no token: with one, the channel allocates a new waiter every time the writer parks,
        // i.e. per packet at light load. Cancellation completes the queue instead, which wakes the wait.
        using var stop = ct.UnsafeRegister(static w => ((FrameWriter)w!).Complete(), this);
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                ct.ThrowIfCancellationRequested();
                int drained = 0;
                if (!Batching)
                {
                    while (TryDequeue(reader, out var frame))
                    {
                        drained++;
                        try
                        {
                            if (Limiter is not null) await Limiter.WaitAsync(frame.FrameLength, ct).ConfigureAwait(false);
                            Volatile.Write(ref WriteSince, Environment.TickCount64);
                            await WriteSampledAsync(frame.Frame, ct).ConfigureAwait(false);
                            Volatile.Write(ref WriteSince, 0);
                            BytesWritten += frame.FrameLength;
                            FramesWritten++;
                        }
                        finally
                        {
                            frame.Return();
                        }
                    }
                }
                else
                {
                    batch ??= System.Buffers.ArrayPool<byte>.Shared.Rent(BatchBytes);
                    int used = 0;
                    while (TryDequeue(reader, out var frame))
                    {
                        drained++;
                        int n = frame.FrameLength;
                        if (n >= LargeFrame)
                        {
                            // A super-packet fills records on its own: write it from its buffer, no copy.
                            if (used > 0) await WriteBatchAsync(batch, used, ct).ConfigureAwait(false);
                            used = 0;
                            try
                            {
                                await WriteBatchAsync(frame.Array, frame.FrameStart, n, ct).ConfigureAwait(false);
                                FramesWritten++;
                            }
                            finally
                            {
                                frame.Return();
                            }
                            continue;
                        }
                        if (used + n > batch.Length)
                        {
                            await WriteBatchAsync(batch, used, ct).ConfigureAwait(false);
                            used = 0;
                        }
                        frame.Frame.Span.CopyTo(batch.AsSpan(used));
                        used += n;
                        FramesWritten++;
                        frame.Return();
                    }
                    if (used > 0) await WriteBatchAsync(batch, used, ct).ConfigureAwait(false);
                }
                if (drained > HighWater) HighWater = drained;
                Volatile.Write(ref WriteSince, Environment.TickCount64);
                await _stream.FlushAsync(ct).ConfigureAwait(false);
                Volatile.Write(ref WriteSince, 0);
                Volatile.Write(ref FramesFlushed, FramesWritten);
            }
            ct.ThrowIfCancellationRequested();
        }
        finally
        {
            while (TryDequeue(reader, out var left)) left.Return();
            if (batch is not null) System.Buffers.ArrayPool<byte>.Shared.Return(batch);
        }
    }

    private ValueTask WriteBatchAsync(byte[] batch, int length, CancellationToken ct) => WriteBatchAsync(batch, 0, length, ct);

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))] // suspends whenever the socket is full
    private async ValueTask WriteBatchAsync(byte[] buffer, int offset, int length, CancellationToken ct)
    {
        if (Limiter is not null) await Limiter.WaitAsync(length, ct).ConfigureAwait(false);
        Volatile.Write(ref WriteSince, Environment.TickCount64);
        await WriteSampledAsync(buffer.AsMemory(offset, length), ct).ConfigureAwait(false);
        Volatile.Write(ref WriteSince, 0);
        BytesWritten += length;
    }

    /// <summary>Samples the encryption of what this writer writes, for the tenant's crypto meter.</summary>
    public CryptoSampler? Crypto { get; init; }

    private ValueTask WriteSampledAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (Crypto is not { } crypto || !crypto.SampleWrite()) return _stream.WriteAsync(data, ct);
        long start = crypto.BeginWrite();
        var write = _stream.WriteAsync(data, ct);
        crypto.EndWrite(start, write.IsCompletedSuccessfully, data.Length);
        return write;
    }
}
