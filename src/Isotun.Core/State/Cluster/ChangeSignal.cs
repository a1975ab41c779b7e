using System.Collections.Concurrent;

namespace Isotun.State.Cluster;

/// <summary>
/// Wakes the watches of every <see cref="SqliteKeyValueStore"/> on one file in this process when any of them writes.
/// Another process's writes are seen only by polling. One signal per file path, kept for the life of the process.
/// </summary>
internal sealed class ChangeSignal
{
    private static readonly ConcurrentDictionary<string, ChangeSignal> ByPath = new(StringComparer.Ordinal);

    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static ChangeSignal For(string path) => ByPath.GetOrAdd(Path.GetFullPath(path), _ => new ChangeSignal());

    /// <summary>Completes at the next <see cref="Pulse"/>; take it before reading, so a write in between is not missed.</summary>
    public Task Next => Volatile.Read(ref _next).Task;

    public void Pulse() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
