namespace Isotun.State.Cluster;

/// <summary>
/// The background loop behind both stores' <see cref="ILeaseKeepAlive"/>: it calls a store's renewal step until the
/// step says the lease has ended (then <see cref="Lost"/> completes) or until disposed. A step that fails with a
/// transient error is tried again after <see cref="RetryDelay"/>; if that lasts a whole TTL the lease ends, and the
/// next step that gets through says so. A step that fails in any other way also completes <see cref="Lost"/>: a
/// keeper that stopped renewing without a word would leave its owner writing with a lease the store has dropped.
/// </summary>
internal sealed class LeaseKeeper : ILeaseKeepAlive
{
    public static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly Func<CancellationToken, Task<TimeSpan?>> _renew;
    private readonly Func<Exception, bool> _transient;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _loop;
    private int _disposed;

    /// <param name="renew">Renews the lease; returns how long to wait before the next renewal, or null when the lease has ended.</param>
    /// <param name="transient">Which of the step's exceptions to retry; any other ends the loop and completes <see cref="Lost"/>.</param>
    public LeaseKeeper(long lease, Func<CancellationToken, Task<TimeSpan?>> renew, Func<Exception, bool> transient, TimeProvider time)
    {
        Lease = lease;
        _renew = renew;
        _transient = transient;
        _time = time;
        _loop = Task.Run(RunAsync);
    }

    public long Lease { get; }

    public Task Lost => _lost.Task;

    /// <summary>What ended the loop when a step failed in a way that is not transient; null otherwise.</summary>
    public Exception? Failure { get; private set; }

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                if (await _renew(_stop.Token).ConfigureAwait(false) is not { } next)
                {
                    _lost.TrySetResult();
                    return;
                }
                wait = next;
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (_transient(e))
            {
                wait = RetryDelay;
            }
            catch (Exception e)
            {
                Failure = e;
                _lost.TrySetResult();
                return;
            }
            try
            {
                await Task.Delay(wait, _time, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stop.Cancel();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The loop catches its steps' failures; this is only for safety: it is over either way.
        }
        _stop.Dispose();
    }
}
