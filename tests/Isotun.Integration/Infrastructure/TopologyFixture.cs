using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Infrastructure;

/// <summary>
/// The life of a topology of namespaces and processes that a fixture builds once for its tests: it holds its tag's
/// lock (so two test runs never share the names), removes what a killed run left behind, builds, and at the end (or
/// when the build fails) stops its processes, deletes its namespaces and its directory.
/// </summary>
public abstract class TopologyFixture(LabLayout files, string? skipReason) : IDisposable
{
    private LabLock? _lock;

    /// <summary>Why the topology cannot be built here, or null.</summary>
    public string? SkipReason { get; } = skipReason;

    /// <summary>Where its files, logs and pid files live.</summary>
    public LabLayout Files { get; } = files;

    public string Dir => Files.Directory;

    /// <summary>The namespaces the fixture makes (the tenant namespaces its servers make too).</summary>
    protected abstract IEnumerable<string> OwnNamespaces { get; }

    /// <summary>The names of the processes it starts with <see cref="LabProcess"/>.</summary>
    protected abstract IEnumerable<string> OwnProcesses { get; }

    protected abstract void Build();

    /// <summary>Builds the topology; the derived constructor calls it last, once its own fields are set.</summary>
    protected void Open()
    {
        if (SkipReason is not null) return;
        _lock = LabLock.Acquire(Files.Tag, TimeSpan.FromMinutes(15));
        Cleanup();
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Stops the processes and deletes the namespaces, whether this run or an earlier one made them.</summary>
    protected virtual void Cleanup()
    {
        foreach (var name in OwnProcesses) LabProcess.Stop(Files, name, TimeSpan.FromSeconds(5));
        foreach (var ns in OwnNamespaces)
            if (NetworkNamespace.Exists(ns)) IpCommand.TryRun("netns", "del", ns);
    }

    public void Dispose()
    {
        if (SkipReason is not null) return;
        Cleanup();
        if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
        _lock?.Dispose();
        GC.SuppressFinalize(this);
    }
}
