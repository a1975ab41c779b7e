namespace Isotun.Logs;

/// <summary>
/// At most <c>burst</c> log lines per reason per period; the rest are counted and reported with the next line that passes.
/// Bad input is counted in metrics anyway; logs only need to show that it happens. One instance per role (server,
/// gateway), keyed by reason, so a flood of one kind cannot hide another.
/// </summary>
internal sealed class LogThrottle(int burst = 10, double periodSeconds = 10, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Dictionary<string, (long Start, int Count, long Suppressed)> _state = new(StringComparer.Ordinal);

    /// <summary>True when a line may be written; <paramref name="suppressed"/> is how many were dropped before it.</summary>
    public bool Allow(string reason, out long suppressed)
    {
        lock (_state)
        {
            long now = _time.GetTimestamp();
            var s = _state.GetValueOrDefault(reason, (now, 0, 0));
            if (_time.GetElapsedTime(s.Start, now).TotalSeconds > periodSeconds) s = (now, 0, s.Suppressed);
            if (s.Count < burst)
            {
                suppressed = s.Suppressed;
                _state[reason] = (s.Start, s.Count + 1, 0);
                return true;
            }

            suppressed = 0;
            _state[reason] = (s.Start, s.Count, s.Suppressed + 1);
            return false;
        }
    }
}
