using System.Diagnostics;
using System.Net;
using Isotun.State;
using Isotun.UnitTests.Security;
using Xunit.Abstractions;

namespace Isotun.UnitTests.State;

/// <summary>
/// A lease the store reported as saved survives the process being killed (SIGKILL) in the middle of further writes:
/// a child process writes leases in a loop and prints each one once saved, and is killed while it writes.
/// </summary>
public sealed class StateCrashTests(ITestOutputHelper output) : IDisposable
{
    private const int Rounds = 3;
    private const int LeasesPerRound = 200;

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task No_committed_lease_is_lost_when_the_writer_is_killed()
    {
        var path = _temp.File("isotun.db");
        var committed = new List<string>();
        for (int round = 0; round < Rounds; round++)
        {
            var read = await WriteUntilKilledAsync(path, $"r{round}", LeasesPerRound);
            committed.AddRange(read);

            // The restart: the file the killed process left (with its WAL) opens, checks and holds every lease it printed.
            using var store = new SqliteStateStore(path);
            var lost = committed.Where(user => store.GetLease("crash", user)?.Address?.Equals(Address(Number(user))) != true).ToList();
            output.WriteLine($"round {round + 1}: read {read.Count} committed leases, {committed.Count} in all, lost {lost.Count}");
            Assert.Empty(lost);
        }
    }

    /// <summary>Starts the probe, reads <paramref name="count"/> saved users from it, then kills it mid-write.</summary>
    private static async Task<List<string>> WriteUntilKilledAsync(string path, string tag, int count)
    {
        var start = new ProcessStartInfo(Probe) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(path);
        start.ArgumentList.Add(tag);
        using var probe = Process.Start(start)!;
        var read = new List<string>();
        try
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            while (read.Count < count)
            {
                var line = await probe.StandardOutput.ReadLineAsync(deadline.Token)
                    ?? throw new InvalidOperationException($"the probe ended early: {await probe.StandardError.ReadToEndAsync()}");
                read.Add(line);
            }
        }
        finally
        {
            probe.Kill(); // SIGKILL on Linux: no finalizers, no Dispose, the WAL left as it is
            await probe.WaitForExitAsync();
        }
        Assert.Equal(128 + 9, probe.ExitCode); // killed by SIGKILL, as .NET reports a signal
        return read;
    }

    /// <summary>The probe's lease for user TAG-i: 10.x.y.z from i.</summary>
    private static IPAddress Address(int i) => new([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]);

    private static int Number(string user) => int.Parse(user.AsSpan(user.IndexOf('-') + 1));

    /// <summary>The probe built beside this assembly's configuration (the project reference builds it first).</summary>
    private static string Probe
    {
        get
        {
            var config = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;
            var exe = RepositoryRoot.File("tests", "Isotun.StateCrashProbe", "bin", config, "net10.0", "Isotun.StateCrashProbe");
            return File.Exists(exe) ? exe : throw new InvalidOperationException($"the crash probe is not built at {exe}");
        }
    }
}
