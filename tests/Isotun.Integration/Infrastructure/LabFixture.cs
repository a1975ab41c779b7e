using Isotun.Lab;

namespace Isotun.Integration.Infrastructure;

/// <summary>
/// One lab for the whole suite (tag "it", underlay 198.18.10.0/23 so a developer's own lab can stay up),
/// built with the same <see cref="DemoLab"/> as `isotun lab up` and removed afterwards.
/// </summary>
public sealed class LabFixture : IDisposable
{
    private readonly LabLock? _lock;

    public LabFixture()
    {
        if (TestEnvironment.SkipReason is not null) return;
        _lock = LabLock.Acquire("it", TimeSpan.FromMinutes(15));
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-it-{Environment.ProcessId}");
        Lab = new DemoLab(new LabLayout("it", 5, dir), TestEnvironment.IsotunExe, line => Log.Add(line));
        if (Lab.IsUp) Lab.Down(keepFiles: false); // left over by a killed run
        Lab.Up(TimeSpan.FromSeconds(60));
    }

    public DemoLab? Lab { get; }
    public LabLayout Layout => Lab!.Layout;
    public List<string> Log { get; } = [];
    public string Pin => File.ReadAllText(Path.Combine(Layout.Directory, "server.pin")).Trim();
    public string Password => File.ReadAllText(Layout.UserPasswordPath).Trim();

    public void Dispose()
    {
        Lab?.Down(keepFiles: false);
        _lock?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class LabCollection : ICollectionFixture<LabFixture>
{
    public const string Name = "lab";
}
