using System.Globalization;
using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;

namespace Isotun.Integration.DataPath;

/// <summary>
/// The data-path suite's own lab (tag "dp", index 10: underlay 198.18.20.0/24, service 198.18.21.0/24), built with
/// the same <see cref="DemoLab"/> as `isotun lab up`: isotun connect and isotun server with their defaults, so the
/// lab's client negotiates batching and GSO. It stays connected throughout and witnesses that no other case hurts it.
/// </summary>
public sealed class DataPathFixture : IDisposable
{
    private readonly LabLock? _lock;

    public DataPathFixture()
    {
        if (TestEnvironment.SkipReason is not null) return;
        _lock = LabLock.Acquire("dp", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-dp-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout("dp", 10, dir), TestEnvironment.IsotunExe, line => Log.Add(line));
        if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run
        Lab.Up(TimeSpan.FromSeconds(90));
        ClientAddress = Lab.ClientAddress() ?? throw new InvalidOperationException("the lab client has no address");
    }

    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string Password => File.ReadAllText(Layout.UserPasswordPath).Trim();
    public IPEndPoint Server => new(Layout.ServerIp, 443);
    public IPAddress ClientAddress { get; } = IPAddress.None;

    public string Scrape() => ServerMetrics.Scrape(Layout.ServerNs);

    /// <summary>Sum of the samples of a series whose labels contain every filter.</summary>
    public double Metric(string name, params string[] filters) => ServerMetrics.Sum(Scrape(), name, filters);

    public string[] LogLines(string name)
    {
        var path = LabProcess.LogPath(Layout, name);
        return File.Exists(path) ? File.ReadAllLines(path) : [];
    }

    /// <summary>A webvpn cookie for a fresh session, from `isotun connect --authenticate` in the client namespace.</summary>
    public string Cookie()
    {
        var auth = Run.Isotun(Layout.ClientNs, ["connect", Layout.ServerUrl.ToString(), "--authenticate", "--user", LabLayout.User, "--passwd-on-stdin", "--servercert", Pin], stdin: Password + "\n");
        Assert.True(auth.ExitCode == 0, auth.ToString());
        return auth.Stdout.Split('\n').Single(l => l.StartsWith("COOKIE=", StringComparison.Ordinal))["COOKIE=".Length..].Trim();
    }

    public void Dispose()
    {
        Lab?.Down(keepFiles: false);
        _lock?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class DataPathCollection : ICollectionFixture<DataPathFixture>
{
    public const string Name = "data-path";
}
