namespace Isotun.Config;

internal sealed class YamlTreeSequence(long line, long column) : YamlTreeNode(line, column)
{
    public List<YamlTreeNode> Items { get; } = [];

    public override string KindName => "a sequence";
}
