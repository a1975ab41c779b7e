namespace Isotun.Fuzz;

/// <summary>
/// One parser under fuzz. <see cref="Run"/> feeds the input to the parser and checks its invariants; any exception that
/// escapes (the parser's own or a <see cref="FuzzInvariantException"/>) is a crash for AFL and a failure for the replay.
/// </summary>
public interface IFuzzTarget
{
    /// <summary>The name on the command line and the folder under <c>fuzz/corpus/</c>.</summary>
    string Name { get; }

    /// <summary>One line for <c>run.sh --list</c>: what is parsed and what is checked.</summary>
    string Description { get; }

    void Run(ReadOnlySpan<byte> input);
}
