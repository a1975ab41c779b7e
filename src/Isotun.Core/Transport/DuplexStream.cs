namespace Isotun.Transport;

/// <summary>
/// The plumbing of a stream that reads and writes and cannot seek, as <see cref="ReadOnlyStream"/> is for one that
/// only reads: a subclass says how it reads and writes (the memory overloads) and flushes; every other overload goes
/// through those.
/// </summary>
public abstract class DuplexStream : Stream
{
    public abstract override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default);

    public abstract override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default);

    public sealed override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public sealed override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public sealed override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public sealed override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public sealed override bool CanRead => true;
    public sealed override bool CanWrite => true;
    public sealed override bool CanSeek => false;
    public sealed override long Length => throw new NotSupportedException();
    public sealed override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public sealed override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public sealed override void SetLength(long value) => throw new NotSupportedException();
}
