using System.Threading.Tasks.Sources;
using Isotun.Transport;

namespace Isotun.Benchmarks;

/// <summary>Endless bytes: the same frame over and over, every read completing synchronously with as much as fits.</summary>
internal sealed class RepeatingStream(byte[] frame) : ReadOnlyStream
{
    private int _offset;

    public override int Read(Span<byte> buffer)
    {
        int n = 0;
        while (n < buffer.Length)
        {
            int k = Math.Min(buffer.Length - n, frame.Length - _offset);
            frame.AsSpan(_offset, k).CopyTo(buffer[n..]);
            n += k;
            _offset = (_offset + k) % frame.Length;
        }
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
}

/// <summary>
/// One whole frame per read, and every read is pending when first awaited (like a socket with nothing received
/// yet): the data "arrives" when the reader registers its continuation, which then runs inline. So the reader
/// really suspends on every read, deterministically and without threads, and its async machinery is measured.
/// </summary>
internal sealed class PendingStream(byte[] frame) : ReadOnlyStream, IValueTaskSource<int>
{
    private Memory<byte> _destination;
    private int _offset;
    private int _result;
    private bool _done;
    private short _token;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _destination = buffer;
        _done = false;
        return new ValueTask<int>(this, ++_token);
    }

    public ValueTaskSourceStatus GetStatus(short token) => _done ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        int k = Math.Min(_destination.Length, frame.Length - _offset);
        frame.AsSpan(_offset, k).CopyTo(_destination.Span);
        _offset = (_offset + k) % frame.Length;
        _result = k;
        _done = true;
        continuation(state);
    }

    public int GetResult(short token) => _result;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
