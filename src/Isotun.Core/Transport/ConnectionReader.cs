using System.Buffers;
using System.Runtime.CompilerServices;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;

namespace Isotun.Transport;

public enum FrameReadStatus { Ok, EndOfStream, BadFrame }

/// <summary>One frame read from the peer; <see cref="Payload"/> is valid until the next read.</summary>
public readonly record struct FrameRead(FrameReadStatus Status, CstpParseResult Parse, CstpPacketType Type, ReadOnlyMemory<byte> Payload);

/// <summary>
/// The receive side of one TLS connection: HTTP heads and bodies first, then CSTP frames, from one
/// buffer so bytes that arrive early are never lost between the phases. The peer is hostile: every
/// read is bounded in size, and the caller bounds it in time with the cancellation token.
/// </summary>
public sealed class ConnectionReader : IDisposable
{
    /// <summary>The most the buffer grows to: a whole 64 KiB frame plus room to read ahead.</summary>
    public const int BufferSize = 128 * 1024;

    /// <summary>What an idle connection holds: the buffer grows only when a frame or a burst needs it.</summary>
    public const int InitialBufferSize = 16 * 1024;

    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;
    private int _end;

    public ConnectionReader(Stream stream)
    {
        _stream = stream;
        _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
    }

    private int Available => _end - _start;

    /// <summary>Samples the decryption of what this reader reads, for the tenant's crypto meter (set once the tunnel is up).</summary>
    public CryptoSampler? Crypto { get; set; }

    /// <summary>
    /// How long a wait for data makes the connection idle. The wait after an idle one costs the next packet a little
    /// more (the zero-byte read's completion, then the real read: about 0.1-0.2 ms at the median in interleaved pings
    /// on a 2-vCPU VM): at 10 s, traffic with pauses of a few seconds (keystrokes, pings a second apart) never pays it,
    /// while sessions that idle between their 30 s DPD probes still hold no buffer.
    /// </summary>
    public TimeSpan IdleAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// An idle connection holds no buffer (set for tunnels, whose sessions may idle for hours): when the buffer is empty
    /// and the last wait for data took <see cref="IdleAfter"/> or more (or it is the first wait since this was set), the
    /// reader gives its buffer back to the pool and waits with a zero-byte read, which takes no buffer in TLS or in the
    /// socket; it rents one again when data is there. A busy connection never waits that long, so it keeps its buffer
    /// and pays nothing.
    /// </summary>
    public bool ReleaseWhenIdle
    {
        get => _releaseWhenIdle;
        set => _releaseWhenIdle = _idle = value; // the first wait after it is set may be a long one
    }

    private bool _releaseWhenIdle, _idle;

    /// <summary>Called, with <see cref="ReleaseWhenIdle"/>, as the reader gives its buffer back for an idle wait: the
    /// caller gives back what it keeps for a burst too. Runs in the read's own flow, between two frames.</summary>
    public Action? Idle { get; set; }

    /// <summary>Reads more bytes; false at end of stream.</summary>
    // Pooled state machine: this suspends on every read that finds no data yet (one packet per read at light
    // load), and a fresh box per suspension would be a per-packet allocation.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillAsync(CancellationToken ct)
    {
        if (_start > 0 && (_end == _buffer.Length || _start == _end))
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length && _buffer.Length < BufferSize)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(BufferSize);
            Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }
        if (_end == _buffer.Length) return true; // caller's bound is smaller than the buffer
        long waitStarted = Environment.TickCount64;
        if (ReleaseWhenIdle && _idle && _end == 0)
        {
            Idle?.Invoke();
            await WaitHoldingNothingAsync(ct).ConfigureAwait(false);
        }
        int n;
        if (Crypto is { } crypto && crypto.SampleRead())
        {
            long start = crypto.BeginRead();
            var read = _stream.ReadAsync(_buffer.AsMemory(_end), ct);
            crypto.EndRead(start, read.IsCompletedSuccessfully, read.IsCompletedSuccessfully ? read.Result : 0);
            n = await read.ConfigureAwait(false);
        }
        else n = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
        if (n <= 0) return false;
        _end += n;
        _idle = Environment.TickCount64 - waitStarted >= (long)IdleAfter.TotalMilliseconds;
        return true;
    }

    /// <summary>Waits for data with a zero-byte read, the buffer back in the pool meanwhile.</summary>
    private async ValueTask WaitHoldingNothingAsync(CancellationToken ct)
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        try
        {
            await _stream.ReadAsync(Memory<byte>.Empty, ct).ConfigureAwait(false);
        }
        finally
        {
            _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
        }
    }

    /// <summary>Waits until at least one byte is buffered; false at end of stream. Lets a caller time a request from its first byte.</summary>
    public async ValueTask<bool> WaitForDataAsync(CancellationToken ct)
    {
        while (Available == 0)
            if (!await FillAsync(ct).ConfigureAwait(false)) return false;
        return true;
    }

    public async ValueTask<(HttpParseResult Result, HttpRequestHead? Head)> ReadRequestHeadAsync(int maxHeadBytes, CancellationToken ct)
    {
        maxHeadBytes = Math.Min(maxHeadBytes, BufferSize); // a head must fit the buffer, else a full buffer would spin
        while (true)
        {
            var result = HttpHeadParser.TryParseRequest(_buffer.AsSpan(_start, _end - _start), maxHeadBytes, out var head, out int consumed);
            if (result == HttpParseResult.Ok) { _start += consumed; return (result, head); }
            if (result != HttpParseResult.NeedMore) return (result, null);
            if (!await FillAsync(ct).ConfigureAwait(false)) return (HttpParseResult.NeedMore, null);
        }
    }

    public async ValueTask<(HttpParseResult Result, HttpResponseHead? Head)> ReadResponseHeadAsync(int maxHeadBytes, CancellationToken ct)
    {
        maxHeadBytes = Math.Min(maxHeadBytes, BufferSize);
        while (true)
        {
            var result = HttpHeadParser.TryParseResponse(_buffer.AsSpan(_start, _end - _start), maxHeadBytes, out var head, out int consumed);
            if (result == HttpParseResult.Ok) { _start += consumed; return (result, head); }
            if (result != HttpParseResult.NeedMore) return (result, null);
            if (!await FillAsync(ct).ConfigureAwait(false)) return (HttpParseResult.NeedMore, null);
        }
    }

    /// <summary>Reads exactly <paramref name="length"/> body bytes (bounded by the caller). Null at end of stream.</summary>
    public async ValueTask<byte[]?> ReadBodyAsync(int length, CancellationToken ct)
    {
        if (length < 0 || length > BufferSize) return null;
        while (Available < length)
            if (!await FillAsync(ct).ConfigureAwait(false)) return null;
        var body = _buffer.AsSpan(_start, length).ToArray();
        _start += length;
        return body;
    }

    /// <summary>Reads the body up to end of stream (HTTP/1.0-style responses without Content-Length), bounded.</summary>
    public async ValueTask<byte[]?> ReadToEndAsync(int maxBytes, CancellationToken ct)
    {
        maxBytes = Math.Min(maxBytes, BufferSize - 1); // a full buffer is "too large", not a reason to spin
        while (Available <= maxBytes)
            if (!await FillAsync(ct).ConfigureAwait(false)) break;
        if (Available > maxBytes) return null;
        var body = _buffer.AsSpan(_start, Available).ToArray();
        _start = _end;
        return body;
    }

    /// <summary>
    /// The next frame if it is already complete in the buffer, without any I/O: lets the caller handle a
    /// whole burst (and coalesce it) before reading again. Earlier payloads stay valid until the next read.
    /// </summary>
    public bool TryReadBufferedFrame(int maxPayload, out FrameRead frame)
    {
        frame = default;
        var parse = CstpFrame.TryParseHeader(_buffer.AsSpan(_start, _end - _start), maxPayload, out var header);
        if (parse == CstpParseResult.NeedMore) return false;
        if (parse != CstpParseResult.Ok)
        {
            frame = new FrameRead(FrameReadStatus.BadFrame, parse, default, default);
            return true;
        }
        int total = CstpFrame.HeaderLength + header.PayloadLength;
        if (Available < total) return false;
        frame = new FrameRead(FrameReadStatus.Ok, parse, header.Type, _buffer.AsMemory(_start + CstpFrame.HeaderLength, header.PayloadLength));
        _start += total;
        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // see FillAsync; callers await it once
    public async ValueTask<FrameRead> ReadFrameAsync(int maxPayload, CancellationToken ct)
    {
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var parse = CstpFrame.TryParseHeader(span, maxPayload, out var header);
            if (parse == CstpParseResult.Ok)
            {
                int total = CstpFrame.HeaderLength + header.PayloadLength;
                if (Available >= total)
                {
                    var payload = _buffer.AsMemory(_start + CstpFrame.HeaderLength, header.PayloadLength);
                    _start += total;
                    return new FrameRead(FrameReadStatus.Ok, parse, header.Type, payload);
                }
            }
            else if (parse != CstpParseResult.NeedMore)
            {
                return new FrameRead(FrameReadStatus.BadFrame, parse, default, default);
            }
            if (!await FillAsync(ct).ConfigureAwait(false))
                return new FrameRead(FrameReadStatus.EndOfStream, CstpParseResult.NeedMore, default, default);
        }
    }

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer!, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}
