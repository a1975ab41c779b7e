using System.Buffers;
using System.Net.Sockets;
using Isotun.Transport;

namespace Isotun.Gateway.Forwarding;

/// <summary>How a relay ended; names the side that failed (as YARP's ForwarderError does).</summary>
public enum RelayEnd
{
    /// <summary>Both directions reached end of stream.</summary>
    Completed,
    ClientError,
    BackendError,
    Cancelled,
    /// <summary>Neither direction carried a byte for the idle timeout: both sides were closed.</summary>
    Idle,
}

/// <summary>
/// Copies bytes both ways between a client and a backend until both directions end. End of stream on one side is passed
/// on as a half-close of the other side's write direction, so protocols that half-close keep working. A relay on which
/// neither direction carries a byte for the idle timeout is ended (a peer that vanished without a FIN or RST would
/// otherwise hold its connection slot for ever). Errors are returned, not thrown. Buffers are pooled (an idle direction
/// holds none, see <see cref="IdleAfter"/>); nothing is allocated per read.
/// </summary>
public static class Relay
{
    public const int BufferSize = 64 * 1024;

    /// <summary>
    /// When bytes last moved, in <see cref="TimeProvider"/> timestamps, and since when each direction's write has been
    /// waiting (0: none waits); shared by both pumps.
    /// </summary>
    private sealed class Activity(long now)
    {
        public long Last = now;
        public long UpWriting, DownWriting;
        public bool TimedOut;

        public void Writing(bool upstream, long since)
        {
            if (upstream) Volatile.Write(ref UpWriting, since);
            else Volatile.Write(ref DownWriting, since);
        }
    }

    /// <param name="idleTimeout">End the relay after this long without a byte either way; zero for never.</param>
    /// <param name="time">The clock for the idle timeout (tests pass a fake one).</param>
    /// <param name="clientReset">Whether the client's stream, when it ends, ended by a reset (a stream that reads a reset as
    /// an end, as <see cref="Transport.SocketStream"/> does): then the relay ends at once as on a client error, instead of
    /// passing a half-close on to a backend that might go on sending into the void.</param>
    public static async Task<RelayEnd> RunAsync(
        Stream client,
        Stream backend,
        Func<ValueTask> closeClientWrite,
        Func<ValueTask> closeBackendWrite,
        GatewayMetrics metrics,
        CancellationToken stopping,
        TimeSpan idleTimeout = default,
        TimeProvider? time = null,
        Func<bool>? clientReset = null)
    {
        time ??= TimeProvider.System;
        using var both = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var activity = new Activity(time.GetTimestamp());
        // Disposed before `both` (declared after it): a late check cannot cancel a disposed source.
        using var watch = idleTimeout > TimeSpan.Zero ? IdleWatch(activity, idleTimeout, time, both) : null;
        var up = PumpAsync(client, backend, closeBackendWrite, metrics, upstream: true, both, activity, time, clientReset);
        var down = PumpAsync(backend, client, closeClientWrite, metrics, upstream: false, both, activity, time, reset: null);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        var end = await first.ConfigureAwait(false);
        if (end != RelayEnd.Completed)
        {
            // One side broke (or the relay went idle): stop the other direction too.
            both.Cancel();
            await (first == up ? down : up).ConfigureAwait(false);
        }
        else
        {
            end = await (first == up ? down : up).ConfigureAwait(false);
        }
        if (stopping.IsCancellationRequested) return RelayEnd.Cancelled;
        return activity.TimedOut ? RelayEnd.Idle : end;
    }

    /// <summary>
    /// Ends a relay when neither direction has moved a byte for the timeout, or when one side has not taken a write for
    /// that long (a peer that reads nothing while it sends a byte now and then keeps the relay busy, but its direction
    /// stalled): looks at the relay's activity when the timeout could be up, and sleeps again for what is left of it
    /// otherwise.
    /// </summary>
    private static RecheckTimer IdleWatch(Activity activity, TimeSpan timeout, TimeProvider time, CancellationTokenSource both) =>
        new(() =>
        {
            var now = time.GetTimestamp();
            var left = timeout - time.GetElapsedTime(Volatile.Read(ref activity.Last), now);
            foreach (var since in (long[])[Volatile.Read(ref activity.UpWriting), Volatile.Read(ref activity.DownWriting)])
                if (since != 0 && timeout - time.GetElapsedTime(since, now) is var writeLeft && writeLeft < left) left = writeLeft;
            if (left > TimeSpan.Zero) return left;
            activity.TimedOut = true;
            both.Cancel();
            return null;
        }, timeout, time);

    /// <summary>
    /// How long a wait for data makes a direction idle: its next waits hold no buffer (a zero-byte read waits for data
    /// without taking any), until a wait is short again. A relay carrying a VPN tunnel idles between its DPD probes, so
    /// an idle session through the gateway holds no relay buffer after its first long wait; traffic with pauses of a
    /// few seconds never pays the zero-byte read.
    /// </summary>
    public static readonly TimeSpan IdleAfter = TimeSpan.FromSeconds(10);

    private static async Task<RelayEnd> PumpAsync(Stream from, Stream to, Func<ValueTask> closeWrite, GatewayMetrics metrics, bool upstream, CancellationTokenSource both, Activity activity, TimeProvider time, Func<bool>? reset)
    {
        byte[]? buffer = Rent(metrics);
        bool idle = false;
        var readError = upstream ? RelayEnd.ClientError : RelayEnd.BackendError;
        var writeError = upstream ? RelayEnd.BackendError : RelayEnd.ClientError;
        try
        {
            while (true)
            {
                long waitStarted = time.GetTimestamp();
                int n;
                try
                {
                    if (idle)
                    {
                        Return(ref buffer, metrics);
                        await from.ReadAsync(Memory<byte>.Empty, both.Token).ConfigureAwait(false);
                        buffer = Rent(metrics);
                    }
                    n = await from.ReadAsync(buffer, both.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return RelayEnd.Cancelled;
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or System.Security.Authentication.AuthenticationException or InvalidOperationException)
                {
                    return readError;
                }

                long now = time.GetTimestamp();
                idle = time.GetElapsedTime(waitStarted, now) >= IdleAfter;
                Volatile.Write(ref activity.Last, now);
                if (n == 0)
                {
                    if (reset?.Invoke() == true) return readError;
                    // Passing the end on (a TLS close_notify, a FIN) writes too, and a peer that reads nothing can
                    // hold that write for ever: it waits within the relay's own end (the idle timeout, a stop).
                    var closing = closeWrite().AsTask();
                    try
                    {
                        await closing.WaitAsync(both.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        // The write ends when the caller closes the stream; its outcome is of no interest then.
                        _ = closing.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                        return RelayEnd.Cancelled;
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
                    {
                    }

                    return RelayEnd.Completed;
                }

                activity.Writing(upstream, now);
                try
                {
                    await to.WriteAsync(buffer.AsMemory(0, n), both.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return RelayEnd.Cancelled;
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
                {
                    return writeError;
                }
                finally
                {
                    activity.Writing(upstream, 0);
                }

                if (upstream) metrics.BytesUp(n);
                else metrics.BytesDown(n);
            }
        }
        finally
        {
            Return(ref buffer, metrics);
        }
    }

    private static byte[] Rent(GatewayMetrics metrics)
    {
        metrics.RelayBuffers(1);
        return ArrayPool<byte>.Shared.Rent(BufferSize);
    }

    private static void Return(ref byte[]? buffer, GatewayMetrics metrics)
    {
        if (buffer is null) return;
        ArrayPool<byte>.Shared.Return(buffer);
        buffer = null;
        metrics.RelayBuffers(-1);
    }
}
