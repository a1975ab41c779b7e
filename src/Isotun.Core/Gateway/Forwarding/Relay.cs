using System.Buffers;

namespace Isotun.Gateway.Forwarding;

/// <summary>How a relay ended; names the side that failed (as YARP's ForwarderError does).</summary>
public enum RelayEnd
{
    /// <summary>Both directions reached end of stream.</summary>
    Completed,
    ClientError,
    BackendError,
    Cancelled,
}

/// <summary>
/// Copies bytes both ways between a client and a backend until both directions end. End of stream on one side is passed
/// on as a half-close of the other side's write direction, so protocols that half-close keep working. Errors are
/// returned, not thrown. Buffers are pooled; nothing is allocated per read.
/// </summary>
public static class Relay
{
    public const int BufferSize = 64 * 1024;

    public static async Task<RelayEnd> RunAsync(
        Stream client,
        Stream backend,
        Func<ValueTask> closeClientWrite,
        Func<ValueTask> closeBackendWrite,
        GatewayMetrics metrics,
        CancellationToken stopping)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var up = PumpAsync(client, backend, closeBackendWrite, metrics, upstream: true, both);
        var down = PumpAsync(backend, client, closeClientWrite, metrics, upstream: false, both);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        var end = await first.ConfigureAwait(false);
        if (end != RelayEnd.Completed)
        {
            // One side broke: stop the other direction too.
            both.Cancel();
            await (first == up ? down : up).ConfigureAwait(false);
            return stopping.IsCancellationRequested ? RelayEnd.Cancelled : end;
        }

        var other = await (first == up ? down : up).ConfigureAwait(false);
        return stopping.IsCancellationRequested ? RelayEnd.Cancelled : other;
    }

    private static async Task<RelayEnd> PumpAsync(Stream from, Stream to, Func<ValueTask> closeWrite, GatewayMetrics metrics, bool upstream, CancellationTokenSource both)
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
                catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException or InvalidOperationException)
                {
                    return readError;
                }

                if (n == 0)
                {
                    try
                    {
                        await closeWrite().ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
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
                catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException)
                {
                    return writeError;
                }

                if (upstream) metrics.BytesUp(n);
                else metrics.BytesDown(n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
