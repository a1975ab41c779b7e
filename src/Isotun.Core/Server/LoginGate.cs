using System.Net;
using Isotun.Transport.Listening;

namespace Isotun.Server;

/// <summary>Whether a login got its turn at the gate, and if not, why.</summary>
public enum GateEntry { Entered, Busy, SourceBusy }

/// <summary>
/// At most <c>concurrency</c> logins are decided at once (each may be a PBKDF2 of 310,000 iterations on a pool thread),
/// and at most <c>queue</c> wait for a turn; past that a login is refused as busy at once, instead of piling up work
/// that would starve the data path of threads. One source (an IPv4 address or an IPv6 /64) has at most
/// <c>perSource</c> logins waiting or being decided, so one peer with many connections cannot take the whole queue
/// and keep every other password login out.
/// </summary>
public sealed class LoginGate(int concurrency, int queue, int perSource = LoginGate.DefaultPerSource)
{
    private readonly SemaphoreSlim _slots = new(concurrency, concurrency);
    private readonly Dictionary<IPAddress, int> _sources = [];
    private readonly Lock _sourcesLock = new();
    private int _waiting;

    public static int DefaultConcurrency => Math.Max(1, Environment.ProcessorCount / 2);

    public const int DefaultQueue = 256;

    public const int DefaultPerSource = 16;

    /// <summary>
    /// <see cref="GateEntry.Entered"/>, and then the caller must <see cref="Exit"/> with the same source; otherwise the
    /// caller refuses the login.
    /// </summary>
    public async ValueTask<GateEntry> EnterAsync(IPAddress? source, CancellationToken ct)
    {
        var key = source is null ? null : SourceKey.Of(source);
        if (key is not null && !TakeSource(key)) return GateEntry.SourceBusy;
        bool entered = false;
        try
        {
            entered = await EnterAsync(ct).ConfigureAwait(false);
            return entered ? GateEntry.Entered : GateEntry.Busy;
        }
        finally
        {
            if (!entered && key is not null) GiveSource(key);
        }
    }

    private async ValueTask<bool> EnterAsync(CancellationToken ct)
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

    public void Exit(IPAddress? source)
    {
        _slots.Release();
        if (source is not null) GiveSource(SourceKey.Of(source));
    }

    private bool TakeSource(IPAddress key)
    {
        lock (_sourcesLock)
        {
            int held = _sources.GetValueOrDefault(key);
            if (held >= perSource) return false;
            _sources[key] = held + 1;
            return true;
        }
    }

    private void GiveSource(IPAddress key)
    {
        lock (_sourcesLock)
        {
            int held = _sources.GetValueOrDefault(key) - 1;
            if (held <= 0) _sources.Remove(key);
            else _sources[key] = held;
        }
    }
}
