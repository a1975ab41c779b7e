namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// A write-only stream that keeps every write call as its own array. Over TLS each call becomes (at least)
/// one record, so "one call per frame" is what openconnect and ocserv need.
/// </summary>
internal sealed class RecordingWriteStream : Stream
{
    private readonly List<byte[]> _writes = [];
    private readonly Lock _lock = new();

    public IReadOnlyList<byte[]> Writes
    {
        get { lock (_lock) return _writes.ToArray(); }
    }

    public int WriteCount
    {
        get { lock (_lock) return _writes.Count; }
    }

    public int Flushes { get; private set; }

    /// <summary>When set, a write fails with this exception (a peer that went away).</summary>
    public Exception? FailWith { get; set; }

    private void Record(ReadOnlySpan<byte> data)
    {
        if (FailWith is { } e) throw e;
        lock (_lock) _writes.Add(data.ToArray());
    }

    // Each overload records on its own and none calls another, so one call is one record.
    public override void Write(byte[] buffer, int offset, int count) => Record(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer) => Record(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Record(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Record(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush() => Flushes++;

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Flushes++;
        return Task.CompletedTask;
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
