using System.Buffers;
using System.Net.Sockets;

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
/// otherwise hold its connection slot for ever). Errors are returned, not thrown. Buffers are pooled; nothing is
/// allocated per read.
/// <para>Two kinds: between streams (a terminated TLS connection and its backend), and between the two sockets
/// themselves (passthrough), where a direction that carries bulk moves its bytes inside the kernel (<see cref="SocketPump"/>).</para>
/// </summary>
public static class Relay
{
    public const int BufferSize = 64 * 1024;

    /// <summary>When bytes last moved, in <see cref="TimeProvider"/> timestamps; shared by both pumps.</summary>
    internal sealed class Activity(TimeProvider time)
    {
        private long _last = time.GetTimestamp();
        public bool TimedOut;

        public void Moved() => Volatile.Write(ref _last, time.GetTimestamp());

        public TimeSpan Idle => time.GetElapsedTime(Volatile.Read(ref _last));
    }

    /// <summary>One direction of a relay, started with the relay's cancellation and its activity.</summary>
    internal delegate Task<RelayEnd> Pump(CancellationTokenSource both, Activity activity);

    /// <summary>A relay between two streams.</summary>
    /// <param name="idleTimeout">End the relay after this long without a byte either way; zero for never.</param>
    /// <param name="time">The clock for the idle timeout (tests pass a fake one).</param>
    public static Task<RelayEnd> RunAsync(
        Stream client,
        Stream backend,
        Func<ValueTask> closeClientWrite,
        Func<ValueTask> closeBackendWrite,
        GatewayMetrics metrics,
        CancellationToken stopping,
        TimeSpan idleTimeout = default,
        TimeProvider? time = null) =>
        RunAsync(
            (both, activity) => PumpAsync(client, backend, closeBackendWrite, metrics, upstream: true, both, activity),
            (both, activity) => PumpAsync(backend, client, closeClientWrite, metrics, upstream: false, both, activity),
            stopping, idleTimeout, time);

    /// <summary>
    /// A relay between two connected TCP sockets, which the caller keeps and closes. Each direction copies through a
    /// pooled buffer at first, and moves its bytes with <c>splice(2)</c> once it has carried
    /// <see cref="SocketPump.SpliceAfter"/> bytes (see <see cref="SocketPump"/>). <paramref name="stats"/>, when given,
    /// counts the bytes each way went.
    /// </summary>
    public static Task<RelayEnd> RunAsync(
        Socket client,
        Socket backend,
        GatewayMetrics metrics,
        CancellationToken stopping,
        TimeSpan idleTimeout = default,
        TimeProvider? time = null,
        RelayStats? stats = null) =>
        RunAsync(
            (both, activity) => new SocketPump(client, backend, metrics, upstream: true, both, activity, stats).RunAsync(),
            (both, activity) => new SocketPump(backend, client, metrics, upstream: false, both, activity, stats).RunAsync(),
            stopping, idleTimeout, time);

    private static async Task<RelayEnd> RunAsync(Pump upstream, Pump downstream, CancellationToken stopping, TimeSpan idleTimeout, TimeProvider? time)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var activity = new Activity(time ?? TimeProvider.System);
        using var watching = new CancellationTokenSource();
        var watch = idleTimeout > TimeSpan.Zero ? WatchIdleAsync(activity, idleTimeout, time ?? TimeProvider.System, both, watching.Token) : Task.CompletedTask;
        var up = upstream(both, activity);
        var down = downstream(both, activity);
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
        watching.Cancel();
        await watch.ConfigureAwait(false);
        if (stopping.IsCancellationRequested) return RelayEnd.Cancelled;
        return activity.TimedOut ? RelayEnd.Idle : end;
    }

    private static async Task WatchIdleAsync(Activity activity, TimeSpan timeout, TimeProvider time, CancellationTokenSource both, CancellationToken done)
    {
        while (true)
        {
            var idle = activity.Idle;
            if (idle >= timeout)
            {
                activity.TimedOut = true;
                both.Cancel();
                return;
            }
            try
            {
                await Task.Delay(timeout - idle, time, done).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task<RelayEnd> PumpAsync(Stream from, Stream to, Func<ValueTask> closeWrite, GatewayMetrics metrics, bool upstream, CancellationTokenSource both, Activity activity)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var readError = upstream ? RelayEnd.ClientError : RelayEnd.BackendError;
        var writeError = upstream ? RelayEnd.BackendError : RelayEnd.ClientError;
        try
        {
            while (true)
            {
                int n;
                try
                {
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

                activity.Moved();
                if (n == 0)
                {
                    try
                    {
                        await closeWrite().ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
                    {
                    }

                    return RelayEnd.Completed;
                }

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

                metrics.Bytes(upstream, n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>What a socket relay's directions carried, and how (for tests and benchmarks).</summary>
public sealed class RelayStats
{
    private long _copied;
    private long _spliced;
    private long _stalls;

    /// <summary>Bytes that went through a buffer in user space.</summary>
    public long Copied => Interlocked.Read(ref _copied);

    /// <summary>Bytes that the kernel moved from socket to socket (<c>splice</c>).</summary>
    public long Spliced => Interlocked.Read(ref _spliced);

    /// <summary>Times a splicing direction found the receiving socket full, and sent what its pipe held by copying.</summary>
    public long Stalls => Interlocked.Read(ref _stalls);

    internal void Stalled() => Interlocked.Increment(ref _stalls);

    internal void Add(bool spliced, long n) => Interlocked.Add(ref spliced ? ref _spliced : ref _copied, n);
}
