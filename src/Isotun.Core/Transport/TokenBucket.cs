namespace Isotun.Transport;

/// <summary>
/// A token bucket in bytes: <see cref="Rate"/> bytes per second with a burst of a tenth of a second
/// (at least 64 KiB). Callers shape rather than drop: <see cref="Take"/> returns how long to wait before
/// the bytes may go, so TCP sees a slower pipe, not losses.
/// </summary>
public sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly double _burst;
    private double _tokens;
    private long _last;

    public TokenBucket(long rate, TimeProvider? time = null)
    {
        if (rate <= 0) throw new ArgumentOutOfRangeException(nameof(rate));
        Rate = rate;
        _time = time ?? TimeProvider.System;
        _burst = Math.Max(64 * 1024, rate / 10.0);
        _tokens = _burst;
        _last = _time.GetTimestamp();
    }

    public long Rate { get; }

    /// <summary>Takes <paramref name="bytes"/> (going into debt if need be) and returns the wait that pays the debt.</summary>
    public TimeSpan Take(int bytes)
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            _tokens = Math.Min(_burst, _tokens + _time.GetElapsedTime(_last, now).TotalSeconds * Rate);
            _last = now;
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / Rate);
        }
    }

    /// <summary>Waits until <paramref name="bytes"/> fit the rate. Waits under a millisecond are batched into later ones.</summary>
    public ValueTask WaitAsync(int bytes, CancellationToken ct)
    {
        var wait = Take(bytes);
        return wait < TimeSpan.FromMilliseconds(1) ? ValueTask.CompletedTask : new ValueTask(Task.Delay(wait, _time, ct));
    }
}
