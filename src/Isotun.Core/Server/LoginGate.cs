namespace Isotun.Server;

/// <summary>
/// At most <c>concurrency</c> logins are decided at once (each may be a PBKDF2 of 310,000 iterations on a pool thread),
/// and at most <c>queue</c> wait for a turn; past that a login is refused as busy at once, instead of piling up work
/// that would starve the data path of threads.
/// </summary>
public sealed class LoginGate(int concurrency, int queue)
{
    private readonly SemaphoreSlim _slots = new(concurrency, concurrency);
    private int _waiting;

    public static int DefaultConcurrency => Math.Max(1, Environment.ProcessorCount / 2);

    public const int DefaultQueue = 256;

    /// <summary>False when the queue is full: the caller refuses. Otherwise the caller must <see cref="Exit"/>.</summary>
    public async ValueTask<bool> EnterAsync(CancellationToken ct)
    {
        if (_slots.Wait(0)) return true;
        if (Interlocked.Increment(ref _waiting) > queue)
        {
            Interlocked.Decrement(ref _waiting);
            return false;
        }
        try
        {
            await _slots.WaitAsync(ct).ConfigureAwait(false);
            return true;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    public void Exit() => _slots.Release();
}
