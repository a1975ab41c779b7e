using System.Net;
using Isotun.Lab;

namespace Isotun.Integration.Infrastructure;

/// <summary>
/// The base of the suites that run on a lab of their own, built with the same <see cref="DemoLab"/> as `isotun lab up`
/// and removed afterwards. Each suite has its tag and index, so its addresses never meet another suite's or a
/// developer's own lab; a lock per tag makes a second test run on the machine wait instead of tearing it down.
/// </summary>
public abstract class DemoLabFixture : IDisposable
{
    private readonly LabLock? _lock;

    /// <param name="skipReason">Why the suite cannot run here (then nothing is built); <see cref="TestEnvironment.SkipReason"/> by default.</param>
    protected DemoLabFixture(string tag, int index, TimeSpan upWithin, string? skipReason = null)
    {
        SkipReason = skipReason ?? TestEnvironment.SkipReason;
        if (SkipReason is not null) return;
        _lock = LabLock.Acquire(tag, TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-{tag}-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout(tag, index, dir), TestEnvironment.IsotunExe, line => { lock (Log) Log.Add(line); });
        try
        {
            if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run (the lock says no live run owns it)
            Lab.Up(upWithin);
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    public string? SkipReason { get; }
    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string Password => File.ReadAllText(Layout.UserPasswordPath).Trim();
    public IPEndPoint Server => new(Layout.ServerIp, 443);

    public string Scrape() => ServerMetrics.Scrape(Layout.ServerNs);

    /// <summary>Sum of the samples of a series whose labels contain every filter.</summary>
    public double Metric(string name, params string[] filters) => ServerMetrics.Sum(Scrape(), name, filters);

    /// <summary>The lines of a lab process's log (server, client, service), or none.</summary>
    public string[] LogLines(string process)
    {
        var path = LabProcess.LogPath(Layout, process);
        return File.Exists(path) ? File.ReadAllLines(path) : [];
    }

    /// <summary>For a suite whose own set-up failed after the lab came up: the lab goes, its files stay to be read.</summary>
    protected void Abandon()
    {
        try
        {
            Lab?.Down(keepFiles: true);
        }
        finally
        {
            _lock?.Dispose();
        }
    }

    public virtual void Dispose()
    {
        try
        {
            Lab?.Down(keepFiles: false);
        }
        finally
        {
            _lock?.Dispose();
        }
    }
}
