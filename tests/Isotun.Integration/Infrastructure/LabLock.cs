namespace Isotun.Integration.Infrastructure;

/// <summary>
/// Lab namespaces are named by tag, not by process: two test runs on one machine (two engineers, or ./test
/// next to an IDE run) would tear down each other's labs. This holds an exclusive lock on
/// /run/lock/isotun-lab-TAG.lock (an flock, released when the process ends, however it ends) for the
/// lifetime of the fixture; a second run waits for the first.
/// </summary>
public sealed class LabLock : IDisposable
{
    private readonly FileStream _lock;

    private LabLock(FileStream stream) => _lock = stream;

    public static LabLock Acquire(string tag, TimeSpan timeout)
    {
        var dir = Directory.Exists("/run/lock") ? "/run/lock" : Path.GetTempPath();
        var path = Path.Combine(dir, $"isotun-lab-{tag}.lock");
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Linux.
                return new LabLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < until)
            {
                Thread.Sleep(1000);
            }
            catch (IOException e)
            {
                throw new InvalidOperationException($"lab '{tag}' is still in use by another test run after {timeout.TotalSeconds:0} s ({path})", e);
            }
        }
    }

    public void Dispose() => _lock.Dispose();
}
