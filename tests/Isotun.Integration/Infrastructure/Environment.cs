using Isotun.Lab;

namespace Isotun.Integration.Infrastructure;

/// <summary>Where the real `isotun` executable is, and whether this machine can run namespace tests.</summary>
public static class TestEnvironment
{
    public static string RepoRoot { get; } = FindRoot();

    public static string IsotunExe { get; } = FindExe();

    /// <summary>Null when the tests can run here, else the reason they are skipped (shown by the runner).</summary>
    public static string? SkipReason { get; } = DemoLab.Preflight();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Isotun.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Isotun.slnx)");
    }

    private static string FindExe()
    {
        // Same configuration as this test assembly: .../bin/<Configuration>/net10.0/
        var config = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;
        var exe = Path.Combine(RepoRoot, "src", "Isotun.Cli", "bin", config, "net10.0", "isotun");
        return File.Exists(exe) ? exe : throw new InvalidOperationException($"isotun executable not built at {exe}");
    }
}
