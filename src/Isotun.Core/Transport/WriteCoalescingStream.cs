using System.Runtime.CompilerServices;

namespace Isotun.Transport;

/// <summary>
/// Sits under SslStream and gathers the TLS records it writes until the next flush, so a burst of small
/// frames (one record each, as stock peers require) leaves in one send() instead of one per record. Record
/// boundaries are untouched; only the TCP segmentation changes. Large writes go straight through. Reads pass
/// through. The frame writer flushes whenever its queue runs dry, so nothing waits for more data. The buffer
/// is pooled and held only between a write and the next flush, so idle connections hold none. Under it is a
/// <see cref="SocketStream"/>, which ends quietly when the peer resets.
/// </summary>
/// <param name="recordReads">
/// Reads stop at the end of each TLS record until <see cref="EndRecordReads"/>: set while SslStream runs the
/// handshake, it then holds no byte past the handshake's last record, and a <see cref="TlsRecordStream"/> can take
/// the connection over without losing what the peer sent right after it.
/// </param>
public sealed class WriteCoalescingStream(Stream inner, int capacity = 64 * 1024, bool recordReads = false) : Stream
{
    private byte[]? _buffer;
    private int _used;

    private const int RecordHeader = 5; // TLS record: type, version (2), length (2)
    private bool _recordReads = recordReads;
    private int _headerSeen, _recordLength, _recordLeft;

    /// <summary>Reads are no longer bounded by TLS records (see the constructor).</summary>
    public void EndRecordReads() => _recordReads = false;

    /// <summary>Whether no TLS record has been read in part: true unless reads bounded by records stopped in one.</summary>
    public bool AtRecordBoundary => _headerSeen == 0;

    // The bytes written from the first write until the next read: the server's first TLS flight (ServerHello to
    // Finished). A full TLS 1.3 handshake sends the certificate in it, a resumed one does not.
    private int _flight; // 0: nothing written yet, 1: in the first flight, 2: over
    private long _firstFlight;

    /// <summary>The bytes of the server's first TLS flight, once a read has followed it.</summary>
    public long FirstFlightBytes => _flight == 2 ? _firstFlight : 0;

    // CPU nanoseconds of the inner (socket) calls made while a CryptoSampler times a write or a read: Off when not
    // timing, Lost once a call did not finish on the spot (its CPU cannot be told apart from the thread's). Each call
    // counts one clock read more than it measured: the sampler's span holds both reads around it, whole.
    private const long Off = -1, Lost = long.MinValue;
    private long _writeSocketNs = Off, _readSocketNs = Off;

    internal void BeginWriteTiming() => _writeSocketNs = 0;

    internal long EndWriteTiming()
    {
        long ns = _writeSocketNs;
        _writeSocketNs = Off;
        return ns;
    }

    internal void BeginReadTiming() => _readSocketNs = 0;

    internal long EndReadTiming()
    {
        long ns = _readSocketNs;
        _readSocketNs = Off;
        return ns;
    }

    private ValueTask InnerWriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (_writeSocketNs < 0) return inner.WriteAsync(data, ct);
        long start = ThreadCpu.NowNs();
        var write = inner.WriteAsync(data, ct);
        _writeSocketNs = write.IsCompletedSuccessfully ? _writeSocketNs + ThreadCpu.NowNs() - start + ThreadCpu.ReadCostNs : Lost;
        return write;
    }

    public override bool CanRead => inner.CanRead;
    public override bool CanWrite => inner.CanWrite;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_flight == 1) _flight = 2;
        if (_recordReads && !buffer.IsEmpty) return ReadInRecordAsync(buffer, ct);
        if (_readSocketNs < 0) return inner.ReadAsync(buffer, ct);
        long start = ThreadCpu.NowNs();
        var read = inner.ReadAsync(buffer, ct);
        _readSocketNs = read.IsCompletedSuccessfully ? _readSocketNs + ThreadCpu.NowNs() - start + ThreadCpu.ReadCostNs : Lost;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    /// <summary>A read that ends at the current record's end at the latest: its header first, then its body.</summary>
    private async ValueTask<int> ReadInRecordAsync(Memory<byte> buffer, CancellationToken ct)
    {
        int want = _headerSeen < RecordHeader ? RecordHeader - _headerSeen : _recordLeft;
        int n = await inner.ReadAsync(buffer[..Math.Min(want, buffer.Length)], ct).ConfigureAwait(false);
        var got = buffer.Span[..Math.Max(n, 0)];
        if (_headerSeen < RecordHeader)
        {
            foreach (byte b in got)
                if (++_headerSeen > 3) _recordLength = _recordLength << 8 | b; // bytes 3 and 4: the length
            if (_headerSeen == RecordHeader) (_recordLeft, _recordLength) = (_recordLength, 0);
        }
        else _recordLeft -= got.Length;
        if (_headerSeen == RecordHeader && _recordLeft == 0) _headerSeen = 0;
        return n;
    }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        if (_flight < 2)
        {
            _flight = 1;
            _firstFlight += data.Length;
        }
        if (data.Length >= capacity / 2) return WriteLargeAsync(data, ct);
        if (_used + data.Length > capacity) return FlushThenBufferAsync(data, ct);
        data.Span.CopyTo((_buffer ??= System.Buffers.ArrayPool<byte>.Shared.Rent(capacity)).AsSpan(_used));
        _used += data.Length;
        return ValueTask.CompletedTask;
    }

    private async ValueTask WriteLargeAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await FlushBufferAsync(ct).ConfigureAwait(false);
        await InnerWriteAsync(data, ct).ConfigureAwait(false);
    }

    private async ValueTask FlushThenBufferAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await FlushBufferAsync(ct).ConfigureAwait(false);
        data.Span.CopyTo((_buffer ??= System.Buffers.ArrayPool<byte>.Shared.Rent(capacity)).AsSpan(_used));
        _used += data.Length;
    }

    /// <summary>Sends <paramref name="data"/> now, after anything gathered before it, whatever its size (no copy).</summary>
    public ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken ct) =>
        _used == 0 ? InnerWriteAsync(data, ct) : WriteLargeAsync(data, ct);

    private ValueTask FlushBufferAsync(CancellationToken ct) => _used == 0 ? ValueTask.CompletedTask : WriteOutAsync(ct);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteOutAsync(CancellationToken ct)
    {
        // Detach first: anything written while this send is in flight goes into a fresh buffer.
        var buffer = _buffer!;
        int n = _used;
        _buffer = null;
        _used = 0;
        try
        {
            await InnerWriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override async Task FlushAsync(CancellationToken ct)
    {
        await FlushBufferAsync(ct).ConfigureAwait(false);
        await inner.FlushAsync(ct).ConfigureAwait(false);
    }

    public override void Flush() => FlushAsync(default).GetAwaiter().GetResult();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
