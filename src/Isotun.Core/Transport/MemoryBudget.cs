namespace Isotun.Transport;

/// <summary>
/// The bytes of frame buffers one session may hold queued for its peer, across all its connections: a peer that
/// stops reading then pins at most this much memory, whatever its buffers' sizes (a stock peer's 2 KiB frames or a
/// GSO peer's 64 KiB super-packets). A frame that would go over the budget is refused, and the caller drops and
/// counts it. Hand-written (one interlocked add per frame) because it sits on the TUN readers' hot path.
/// </summary>
public sealed class MemoryBudget
{
    public const long DefaultBytes = 4L * 1024 * 1024;

    private long _held;
    private long _refused;

    public MemoryBudget(long limit)
    {
        // Below one super-packet's buffer, a GSO peer could never be sent anything.
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, PacketBuffer.Capacity);
        Limit = limit;
    }

    public long Limit { get; }

    /// <summary>Bytes held now by queued frames.</summary>
    public long Held => Volatile.Read(ref _held);

    /// <summary>Frames refused because they would have gone over <see cref="Limit"/>.</summary>
    public long Refused => Volatile.Read(ref _refused);

    /// <summary>Takes <paramref name="bytes"/> if they fit; false (counted) if they would go over the limit.</summary>
    public bool TryTake(int bytes)
    {
        if (Interlocked.Add(ref _held, bytes) <= Limit) return true;
        Interlocked.Add(ref _held, -bytes);
        Interlocked.Increment(ref _refused);
        return false;
    }

    /// <summary>Takes <paramref name="bytes"/> even over the limit: for control frames, which are never dropped (and are small).</summary>
    public void Take(int bytes) => Interlocked.Add(ref _held, bytes);

    /// <summary>Gives back what a frame took once it has left the queue.</summary>
    public void Give(int bytes) => Interlocked.Add(ref _held, -bytes);
}
