namespace Isotun.Transport;

/// <summary>
/// A token bucket in bytes: <see cref="Rate"/> bytes per second with a burst of a tenth of a second
/// (at least 64 KiB). Callers shape rather than drop: <see cref="Take"/> returns how long to wait before
/// the bytes may go, so TCP sees a slower pipe, not losses. The rate can change while the bucket is in use
/// (<see cref="SetRate"/>, a reload); a rate of 0 lets everything through.
/// </summary>
public sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _burst;
    private double _tokens;
    private long _last;
    private long _rate;

    public TokenBucket(long rate, TimeProvider? time = null)
    {
        if (rate <= 0) throw new ArgumentOutOfRangeException(nameof(rate));
        _rate = rate;
        _time = time ?? TimeProvider.System;
        _burst = Burst(rate);
        _tokens = _burst;
        _last = _time.GetTimestamp();
    }

    /// <summary>Bytes per second; 0 when the bucket no longer limits.</summary>
    public long Rate => Volatile.Read(ref _rate);

    private static double Burst(long rate) => Math.Max(64 * 1024, rate / 10.0);

    /// <summary>
    /// A new rate from now on (0: no limit): the tokens earned so far are kept, up to the new burst, and a bucket that
    /// did not limit starts full.
    /// </summary>
    public void SetRate(long rate)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rate);
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            double burst = rate == 0 ? 0 : Burst(rate);
            _tokens = _rate == 0 ? burst : Math.Min(burst, _tokens + _time.GetElapsedTime(_last, now).TotalSeconds * _rate);
            _burst = burst;
            _last = now;
            Volatile.Write(ref _rate, rate);
        }
    }

    /// <summary>Takes <paramref name="bytes"/> (going into debt if need be) and returns the wait that pays the debt.</summary>
    public TimeSpan Take(int bytes)
    {
        lock (_lock)
        {
            if (_rate == 0) return TimeSpan.Zero;
            long now = _time.GetTimestamp();
            _tokens = Math.Min(_burst, _tokens + _time.GetElapsedTime(_last, now).TotalSeconds * _rate);
            _last = now;
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / _rate);
        }
    }

    /// <summary>Waits until <paramref name="bytes"/> fit the rate. Waits under a millisecond are batched into later ones.</summary>
    public ValueTask WaitAsync(int bytes, CancellationToken ct)
    {
        if (Rate == 0) return ValueTask.CompletedTask;
        var wait = Take(bytes);
        return wait < TimeSpan.FromMilliseconds(1) ? ValueTask.CompletedTask : new ValueTask(Task.Delay(wait, _time, ct));
    }
}
