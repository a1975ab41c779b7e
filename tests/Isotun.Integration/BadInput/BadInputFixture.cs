using System.Globalization;
using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Integration.Interop;
using Isotun.Lab;

namespace Isotun.Integration.BadInput;

/// <summary>
/// The bad-input suite's own lab (tag "bi", index 9: underlay 198.18.18.0/24, service 198.18.19.0/24), built
/// with the same <see cref="DemoLab"/> as `isotun lab up`. Its client stays connected throughout and is the
/// witness that no misbehaving peer touches another session. Handshake timeout 5 s, auth timeout 15 s.
/// </summary>
public sealed class BadInputFixture : IDisposable
{
    public BadInputFixture()
    {
        if (TestEnvironment.SkipReason is not null) return;
        // Another test run on this machine would tear this lab down (same tag): wait for it instead.
        _lock = LabLock.Acquire("bi", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-bi-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout("bi", 9, dir), TestEnvironment.IsotunExe, line => Log.Add(line));
        if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run
        try
        {
            Lab.Up(TimeSpan.FromSeconds(90));
        }
        catch
        {
            _lock.Dispose();
            throw;
        }
        WitnessAddress = Lab.ClientAddress() ?? throw new InvalidOperationException("the lab client has no address");
        ServerPid = LabProcess.Pid(Layout, "server") ?? throw new InvalidOperationException("the lab server has no PID");
    }

    private readonly LabLock? _lock;

    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string Password => File.ReadAllText(Layout.UserPasswordPath).Trim();
    public IPEndPoint Server => new(Layout.ServerIp, 443);

    /// <summary>The lab client's tunnel address at the start; it must never change.</summary>
    public IPAddress WitnessAddress { get; } = IPAddress.None;
    public int ServerPid { get; }

    public string Scrape() => ServerMetrics.Scrape(Layout.ServerNs);

    /// <summary>Sum of the samples of a series whose labels contain every filter.</summary>
    public double Metric(string name, params string[] filters) => ServerMetrics.Sum(Scrape(), name, filters);

    public static double Metric(string scrape, string name, params string[] filters) => ServerMetrics.Sum(scrape, name, filters);

    /// <summary>Lines of the lab client's log that say its connection was lost.</summary>
    public int WitnessLosses()
    {
        var path = LabProcess.LogPath(Layout, "client");
        return File.Exists(path) ? File.ReadAllLines(path).Count(l => l.Contains("connection lost")) : 0;
    }

    public void Dispose()
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

[CollectionDefinition(Name)]
public sealed class BadInputCollection : ICollectionFixture<BadInputFixture>
{
    public const string Name = "bad-input";
}
