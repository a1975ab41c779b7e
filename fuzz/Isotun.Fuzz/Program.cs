using Isotun.Fuzz;
using SharpFuzz;

// Isotun.Fuzz --list                     the targets, one per line: name, then what it checks
// Isotun.Fuzz TARGET                     run under afl-fuzz (fuzz/run.sh sets that up): one input per execution
// Isotun.Fuzz --replay TARGET [--slow-ms N] PATH...
//                                        run files (or folders of them) in-process, without AFL; exit 1 on a failure
//                                        (an exception, or with --slow-ms an input that took longer than N ms)
if (args is ["--list"])
{
    foreach (var target in FuzzTargets.All)
    {
        Console.WriteLine($"{target.Name,-16} {target.Description}");
    }

    return 0;
}

if (args is ["--replay", var replayName, .. var paths] && paths.Length > 0)
{
    var target = FuzzTargets.Find(replayName);
    if (target is null)
    {
        return UnknownTarget(replayName);
    }

    TimeSpan? slowLimit = null;
    if (paths is ["--slow-ms", var ms, .. var rest])
    {
        if (!int.TryParse(ms, out int limit) || limit <= 0 || rest.Length == 0)
        {
            return Usage();
        }

        slowLimit = TimeSpan.FromMilliseconds(limit);
        paths = rest;
    }

    var files = Replay.Files(paths);
    return Replay.Run(target, files, Console.Out, slowLimit) == 0 ? 0 : 1;
}

if (args is [var name] && !name.StartsWith('-'))
{
    var target = FuzzTargets.Find(name);
    if (target is null)
    {
        return UnknownTarget(name);
    }

    // Out of process: a hang or a stack overflow in the parser kills a child that SharpFuzz restarts, not the run.
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        target.Run(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    });
    return 0;
}

return Usage();

static int Usage()
{
    Console.Error.WriteLine("usage: Isotun.Fuzz --list | TARGET | --replay TARGET [--slow-ms N] PATH...");
    return 2;
}

static int UnknownTarget(string name)
{
    Console.Error.WriteLine($"unknown target '{name}'; the targets are: {string.Join(", ", FuzzTargets.All.Select(t => t.Name))}");
    return 2;
}
