using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace Isotun.Transport;

/// <summary>
/// The stream under a tunnel connection's TLS: a connected socket, which it owns. Unlike NetworkStream, a peer's
/// reset (RST) ends it as a close would: reads return 0 and writes are dropped, and <see cref="PeerReset"/> says so.
/// Any other socket error is thrown as an <see cref="IOException"/>, as NetworkStream does.
/// <para>
/// Hand-written for the cost of a reset: a client that closes with bytes still unread resets instead of closing
/// (openssl s_time leaves before a TLS 1.3 server's session tickets arrive; a probe reads one byte of a reply), and
/// the runtime's awaitable socket calls report the reset as an exception with its stack trace rendered as text, which
/// took a fifth of a busy server's CPU under such a handshake load. So each call first tries the socket once without
/// waiting, which reports errors as codes; a read that has to wait waits for readability the same way (a zero-byte
/// receive on event args of its own) and then reads. Only a write that has to wait for room goes through the
/// runtime's awaitable send (a reset then still costs its exception).
/// </para>
/// <para>A cancelled read (the connection's deadlines, a stop) ends reading on this stream for good; writes go on.</para>
/// </summary>
public sealed class SocketStream : DuplexStream
{
    private readonly Socket _socket;
    private volatile bool _reset;

    public SocketStream(Socket socket)
    {
        _socket = socket;
        // Synchronous calls return WouldBlock instead of waiting; asynchronous ones are unchanged.
        _socket.Blocking = false;
    }

    /// <summary>The peer reset the connection: reads end and writes are dropped.</summary>
    public bool PeerReset => _reset;

    private static bool IsReset(SocketError e) => e is SocketError.ConnectionReset or SocketError.Shutdown; // Shutdown: EPIPE

    private static IOException Failure(SocketError e) => Failure(new SocketException((int)e));

    // As NetworkStream: every failure but a cancellation is an IOException, a closed socket's included.
    private static IOException Failure(Exception e) => e as IOException ?? new IOException($"socket: {e.Message}", e);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_reset) return ValueTask.FromResult(0);
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled<int>(ct);
        // A zero-byte read waits for data without taking any (an idle connection holds no buffer): nothing to try.
        if (buffer.IsEmpty) return WaitReadAsync(buffer, ct);
        int n;
        try
        {
            n = ReceiveNow(buffer.Span);
        }
        catch (IOException e)
        {
            return ValueTask.FromException<int>(e);
        }
        return n < 0 ? WaitReadAsync(buffer, ct) : ValueTask.FromResult(n);
    }

    /// <summary>One receive that does not wait: the bytes read (0 at the end, or after a reset), or -1 when none are there yet.</summary>
    private int ReceiveNow(Span<byte> buffer)
    {
        int n;
        SocketError error;
        try
        {
            n = _socket.Receive(buffer, SocketFlags.None, out error);
        }
        catch (ObjectDisposedException e)
        {
            throw Failure(e);
        }
        if (error == SocketError.Success) return n;
        if (error == SocketError.WouldBlock) return -1;
        if (!IsReset(error)) throw Failure(error);
        _reset = true;
        return 0;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // pooled: a pending read allocates nothing
    private async ValueTask<int> WaitReadAsync(Memory<byte> buffer, CancellationToken ct)
    {
        while (true)
        {
            SocketError waited;
            // A cancelled wait (a deadline, a stop) ends reading on this socket: shutting down its receive side is the
            // one way to wake a waiting readiness check, and every caller closes the connection after a cancelled read.
            using (ct.CanBeCanceled ? ct.UnsafeRegister(static s => ((SocketStream)s!).StopReading(), this) : default)
            {
                try
                {
                    waited = await (_readable ??= new Readiness()).WaitAsync(_socket).ConfigureAwait(false);
                }
                catch (ObjectDisposedException e)
                {
                    throw Failure(e);
                }
            }
            ct.ThrowIfCancellationRequested();
            if (IsReset(waited))
            {
                _reset = true;
                return 0;
            }
            if (waited != SocketError.Success) throw Failure(waited);
            if (buffer.IsEmpty) return 0;
            int n = ReceiveNow(buffer.Span);
            if (n >= 0) return n; // else woken without data after all: wait again
        }
    }

    private void StopReading()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Receive);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed or gone: the wait ends anyway.
        }
    }

    private Readiness? _readable; // made at the first read that has to wait

    /// <summary>
    /// Waits until the socket has data, an end or an error to read, and reports an error as a code, not an exception:
    /// a zero-byte receive, which the runtime answers when the socket becomes readable without taking any data.
    /// </summary>
    private sealed class Readiness : SocketAsyncEventArgs, IValueTaskSource<SocketError>
    {
        private ManualResetValueTaskSourceCore<SocketError> _core;

        public Readiness() : base(unsafeSuppressExecutionContextFlow: true) => SetBuffer(Memory<byte>.Empty);

        public ValueTask<SocketError> WaitAsync(Socket socket)
        {
            _core.Reset();
            return socket.ReceiveAsync(this) ? new ValueTask<SocketError>(this, _core.Version) : new ValueTask<SocketError>(SocketError);
        }

        protected override void OnCompleted(SocketAsyncEventArgs e) => _core.SetResult(e.SocketError);

        public SocketError GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        if (_reset) return ValueTask.CompletedTask;
        if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
        while (!data.IsEmpty)
        {
            int n;
            SocketError error;
            try
            {
                n = _socket.Send(data.Span, SocketFlags.None, out error);
            }
            catch (ObjectDisposedException e)
            {
                return ValueTask.FromException(Failure(e));
            }
            if (error == SocketError.Success)
            {
                data = data[n..];
                continue;
            }
            if (error == SocketError.WouldBlock) return WaitWriteAsync(data, ct);
            if (IsReset(error))
            {
                _reset = true;
                return ValueTask.CompletedTask;
            }
            return ValueTask.FromException(Failure(error));
        }
        return ValueTask.CompletedTask;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // pooled: a pending write allocates nothing
    private async ValueTask WaitWriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        try
        {
            // The runtime's send finishes the whole buffer before it completes.
            await _socket.SendAsync(data, SocketFlags.None, ct).ConfigureAwait(false);
        }
        catch (SocketException e) when (IsReset(e.SocketErrorCode))
        {
            _reset = true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Failure(e);
        }
    }

    public override Task FlushAsync(CancellationToken ct) => Task.CompletedTask;

    public override void Flush() { }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _socket.Dispose();
        base.Dispose(disposing);
    }
}
