using System.Buffers;
using System.Net.Sockets;
using Isotun.Linux;

namespace Isotun.Gateway.Forwarding;

/// <summary>
/// One direction of a passthrough relay, from one connected TCP socket to the other, until the first one's end of
/// stream (passed on as a half-close), an error, or the relay's cancellation.
/// <para>
/// It starts by copying through a pooled buffer, which costs nothing to set up: most connections (a handshake, a few
/// requests) never carry much. Once a direction has carried <see cref="SpliceAfter"/> bytes, it moves them with
/// <c>splice(2)</c> through a pipe of its own: socket to pipe, pipe to socket, the pages never copied through user
/// space, which leaves the CPU to the endpoints on a shared host. When the receiving socket has no room, what the pipe
/// holds is read out and sent by the runtime, which waits for the room; then splicing goes on. Without a pipe (out of
/// file descriptors) or where splice is refused, the direction keeps copying.
/// </para>
/// Hand-written, because the runtime has no zero-copy relay between sockets.
/// </summary>
internal sealed class SocketPump(Socket from, Socket to, GatewayMetrics metrics, bool upstream, CancellationTokenSource both, Relay.Activity activity, RelayStats? stats)
{
    /// <summary>The bytes a direction carries by copying before it moves to splice.</summary>
    public const long SpliceAfter = 256 * 1024;

    private const int EAGAIN = 11;
    private const int EINVAL = 22;

    private RelayEnd ReadError => upstream ? RelayEnd.ClientError : RelayEnd.BackendError;
    private RelayEnd WriteError => upstream ? RelayEnd.BackendError : RelayEnd.ClientError;

    public async Task<RelayEnd> RunAsync()
    {
        if (await CopyAsync(OperatingSystem.IsLinux() ? SpliceAfter : long.MaxValue).ConfigureAwait(false) is { } end) return end;
        using var pipe = SplicePipe.TryCreate(out _);
        if (pipe is not null && await SpliceAsync(pipe).ConfigureAwait(false) is { } spliced) return spliced;
        return (await CopyAsync(long.MaxValue).ConfigureAwait(false))!.Value;
    }

    /// <summary>Copies until the direction ends (its end), or until it has carried <paramref name="limit"/> bytes (null).</summary>
    private async Task<RelayEnd?> CopyAsync(long limit)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Relay.BufferSize);
        try
        {
            for (long carried = 0; carried < limit;)
            {
                int n;
                try
                {
                    n = await from.ReceiveAsync(buffer, SocketFlags.None, both.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return RelayEnd.Cancelled;
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return ReadError;
                }
                activity.Moved();
                if (n == 0) return Ended();
                if (await SendAsync(buffer.AsMemory(0, n)).ConfigureAwait(false) is { } failed) return failed;
                carried += n;
            }
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Splices until the direction ends (its end), or null when splice is refused for these sockets before any byte
    /// went through the pipe (then copying goes on).
    /// </summary>
    private async Task<RelayEnd?> SpliceAsync(SplicePipe pipe)
    {
        int source, sink;
        try
        {
            // splice waits on a blocking socket; the runtime's own calls are not changed by this.
            from.Blocking = false;
            to.Blocking = false;
            source = (int)from.Handle;
            sink = (int)to.Handle;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return RelayEnd.Cancelled;
        }

        bool moved = false;
        while (true)
        {
            long n = pipe.From(source, pipe.Capacity);
            if (n == -EAGAIN)
            {
                try
                {
                    // Waits until the socket has bytes, an end or an error, and takes none of them.
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, both.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return RelayEnd.Cancelled;
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return ReadError;
                }
                continue;
            }
            if (n == -EINVAL && !moved) return null;
            if (n < 0) return both.IsCancellationRequested ? RelayEnd.Cancelled : ReadError;
            activity.Moved();
            if (n == 0) return Ended();
            moved = true;
            if (await DrainAsync(pipe, sink, (int)n).ConfigureAwait(false) is { } failed) return failed;
        }
    }

    /// <summary>Sends the <paramref name="held"/> bytes the pipe holds on to the sink; null when all went.</summary>
    private async ValueTask<RelayEnd?> DrainAsync(SplicePipe pipe, int sink, int held)
    {
        while (held > 0)
        {
            long n = pipe.To(sink, held);
            if (n > 0)
            {
                held -= (int)n;
                Count(spliced: true, n);
                continue;
            }
            if (n != -EAGAIN) return both.IsCancellationRequested ? RelayEnd.Cancelled : WriteError;
            // No room on the sink: the runtime's send waits for it. The pipe's bytes go first, in order.
            stats?.Stalled();
            var buffer = ArrayPool<byte>.Shared.Rent(held);
            try
            {
                long read = pipe.Read(buffer.AsSpan(0, held));
                if (read != held) return ReadError; // a pipe of our own gives back what it holds; anything else is broken
                if (await SendAsync(buffer.AsMemory(0, held)).ConfigureAwait(false) is { } failed) return failed;
                held = 0;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        return null;
    }

    /// <summary>Sends all of <paramref name="data"/> (counted as copied); null when it went, else how the relay ends.</summary>
    private async ValueTask<RelayEnd?> SendAsync(ReadOnlyMemory<byte> data)
    {
        try
        {
            // The runtime's send finishes the whole buffer before it completes.
            await to.SendAsync(data, SocketFlags.None, both.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return RelayEnd.Cancelled;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return WriteError;
        }
        Count(spliced: false, data.Length);
        return null;
    }

    private void Count(bool spliced, long n)
    {
        metrics.Bytes(upstream, n);
        stats?.Add(spliced, n);
    }

    /// <summary>The source's end of stream: passed on as a half-close of the sink.</summary>
    private RelayEnd Ended()
    {
        try
        {
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        return RelayEnd.Completed;
    }
}
