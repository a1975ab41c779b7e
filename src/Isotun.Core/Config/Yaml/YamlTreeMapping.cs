namespace Isotun.Config;

/// <summary>A mapping with its entries in document order; duplicates are kept so the loader can report them.</summary>
internal sealed class YamlTreeMapping(long line, long column) : YamlTreeNode(line, column)
{
    public List<KeyValuePair<YamlTreeNode, YamlTreeNode>> Entries { get; } = [];

    public override string KindName => "a mapping";
}
