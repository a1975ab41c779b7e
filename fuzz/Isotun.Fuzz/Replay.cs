using System.Diagnostics;

namespace Isotun.Fuzz;

/// <summary>
/// Runs files through a target in this process, without AFL: the corpus in CI, a saved crash while fixing it.
/// Each exception is reported with the file that caused it; the run goes on to the next file.
/// </summary>
public static class Replay
{
    /// <summary>The files under <paramref name="paths"/> (files, or folders read recursively), in a stable order.</summary>
    public static IReadOnlyList<string> Files(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (string path in paths)
        {
            if (Directory.Exists(path))
            {
                // AFL writes a README.txt beside the crashes; it is not an input.
                files.AddRange(Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => Path.GetFileName(f) != "README.txt")
                    .Order(StringComparer.Ordinal));
            }
            else if (File.Exists(path))
            {
                files.Add(path);
            }
        }

        return files;
    }

    /// <summary>
    /// Replays <paramref name="files"/>; returns how many failed, having written each failure to <paramref name="log"/>.
    /// With <paramref name="slowLimit"/>, an input that takes longer fails too (a hang AFL saved); without, timing is only
    /// reported (the unit tests run on loaded machines and assert behaviour, not time).
    /// </summary>
    public static int Run(IFuzzTarget target, IReadOnlyList<string> files, TextWriter log, TimeSpan? slowLimit = null)
    {
        int failed = 0;
        var slowest = TimeSpan.Zero;
        string? slowestFile = null;
        foreach (string file in files)
        {
            var input = File.ReadAllBytes(file);
            var clock = Stopwatch.StartNew();
            try
            {
                target.Run(input);
            }
            catch (Exception ex)
            {
                failed++;
                log.WriteLine($"FAIL {target.Name} {file}: {ex.GetType().Name}: {ex.Message}");
                log.WriteLine(ex.StackTrace);
            }

            if (clock.Elapsed > slowLimit)
            {
                failed++;
                log.WriteLine($"SLOW {target.Name} {file}: {clock.Elapsed.TotalMilliseconds:0} ms, over the {slowLimit.Value.TotalMilliseconds:0} ms limit");
            }

            if (clock.Elapsed > slowest)
            {
                slowest = clock.Elapsed;
                slowestFile = file;
            }
        }

        log.WriteLine($"{target.Name}: {files.Count} inputs, {failed} failed" +
            (slowestFile is null ? string.Empty : $", slowest {slowest.TotalMilliseconds:0.0} ms ({Path.GetFileName(slowestFile)})"));
        return failed;
    }
}
