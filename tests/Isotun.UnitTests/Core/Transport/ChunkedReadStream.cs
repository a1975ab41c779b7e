using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// A read-only stream that hands out fixed bytes in the chunks it was given, one chunk (or less, when the
/// caller's buffer is smaller) per read, the way TLS records arrive; then end of stream. Counts reads so a
/// test can tell whether the reader went back to the stream.
/// </summary>
internal sealed class ChunkedReadStream(IEnumerable<byte[]> chunks) : ReadOnlyStream
{
    private readonly Queue<byte[]> _chunks = new(chunks);
    private byte[]? _current;
    private int _offset;

    /// <summary>The whole vector in one read: everything arrives early.</summary>
    public static ChunkedReadStream Whole(byte[] data) => new([data]);

    /// <summary>The vector re-split at random, mostly small reads (see <see cref="Protocol.Resplitter"/>).</summary>
    public static ChunkedReadStream Resplit(byte[] data, int seed, int maxChunk = 64) =>
        new(Protocol.Resplitter.Chunks(data, new Random(seed), maxChunk));

    public int Reads { get; private set; }

    /// <summary>When true, reading past the last chunk fails the test instead of returning end of stream.</summary>
    public bool ForbidEndOfStream { get; init; }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        Reads++;
        if (buffer.IsEmpty) return 0;
        while (_current is null || _offset == _current.Length)
        {
            if (!_chunks.TryDequeue(out _current))
            {
                _current = null;
                if (ForbidEndOfStream) throw new InvalidOperationException("the reader asked for more bytes than the test supplied");
                return 0;
            }
            _offset = 0;
        }
        int n = Math.Min(buffer.Length, _current.Length - _offset);
        _current.AsSpan(_offset, n).CopyTo(buffer);
        _offset += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
}
