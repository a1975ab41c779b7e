using Isotun.Fuzz;

namespace Isotun.UnitTests.Fuzz;

/// <summary>
/// Every committed fuzz seed (fuzz/corpus/TARGET/*) goes through its target, in-process, as <c>fuzz/run.sh --replay</c>
/// does: a parser that throws or breaks an invariant on any of them fails here, without AFL.
/// </summary>
public class CorpusReplayTests
{
    private static readonly string CorpusRoot = Path.Combine(FindRoot(), "fuzz", "corpus");

    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var target in FuzzTargets.All)
        {
            data.Add(target.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_seed_replays_without_an_exception(string name)
    {
        var target = FuzzTargets.Find(name)!;
        var files = Replay.Files([Path.Combine(CorpusRoot, name)]);
        Assert.NotEmpty(files);
        var log = new StringWriter();
        int failed = Replay.Run(target, files, log);
        Assert.True(failed == 0, log.ToString());
    }

    [Fact]
    public void Every_corpus_folder_names_a_target()
    {
        var names = FuzzTargets.All.Select(t => t.Name).ToHashSet();
        foreach (var dir in Directory.GetDirectories(CorpusRoot))
        {
            Assert.Contains(Path.GetFileName(dir), names);
        }
    }

    [Fact]
    public void A_broken_invariant_is_reported_as_a_failure()
    {
        // The replay must see what AFL sees: an escaping exception is a failure with the file named.
        string file = Path.Combine(Path.GetTempPath(), $"isotun-fuzz-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(file, [1]);
        try
        {
            var log = new StringWriter();
            Assert.Equal(1, Replay.Run(new Throwing(), [file], log));
            Assert.Contains(file, log.ToString());
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Isotun.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Isotun.slnx not found above the test directory");
    }

    private sealed class Throwing : IFuzzTarget
    {
        public string Name => "throwing";

        public string Description => "fails on every input";

        public void Run(ReadOnlySpan<byte> input) => Invariant.That(input.IsEmpty);
    }
}
