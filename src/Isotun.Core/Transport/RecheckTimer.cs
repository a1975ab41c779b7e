namespace Isotun.Transport;

/// <summary>
/// A check that lives as long as a connection (a relay's idle timeout, a tunnel's dead-peer detection): run by a timer,
/// it says when it wants to run again, or null when it is done. A timer, not a task that waits: a waiting task
/// cancelled at the connection's end throws there, and carries the rest of the end over to a pool thread; a timer is
/// just disposed. <see cref="Dispose"/> returns after a check in progress has finished, and no check starts after it.
/// </summary>
public sealed class RecheckTimer : IDisposable
{
    private readonly Func<TimeSpan?> _check;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private bool _done;

    public RecheckTimer(Func<TimeSpan?> check, TimeSpan first, TimeProvider? time = null)
    {
        _check = check;
        lock (_gate) // a first check due at once waits for the timer to be known
            _timer = (time ?? TimeProvider.System).CreateTimer(static s => ((RecheckTimer)s!).Run(), this, first, Timeout.InfiniteTimeSpan);
    }

    private void Run()
    {
        lock (_gate) // held while the check runs, so that Dispose returns only after it (the lock is reentrant)
        {
            if (_done) return;
            if (_check() is { } next) _timer.Change(next, Timeout.InfiniteTimeSpan);
            else _done = true;
        }
    }

    public void Dispose()
    {
        lock (_gate) _done = true;
        _timer.Dispose();
    }
}
