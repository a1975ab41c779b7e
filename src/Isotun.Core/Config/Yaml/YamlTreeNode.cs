namespace Isotun.Config;

/// <summary>A node of the small YAML tree the config loader walks; keeps its position for messages.</summary>
internal abstract class YamlTreeNode(long line, long column)
{
    public long Line { get; } = line;

    public long Column { get; } = column;

    /// <summary>"a mapping", "a sequence", "a scalar": for "expected X, found Y" messages.</summary>
    public abstract string KindName { get; }
}
