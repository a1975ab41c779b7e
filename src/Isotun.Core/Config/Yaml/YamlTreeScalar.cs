namespace Isotun.Config;

internal sealed class YamlTreeScalar(long line, long column, string value, bool isPlain) : YamlTreeNode(line, column)
{
    public string Value { get; } = value;

    /// <summary>Unquoted; only plain scalars can mean null.</summary>
    public bool IsPlain { get; } = isPlain;

    /// <summary>An empty value, <c>~</c> or <c>null</c>: treated as if the key were absent.</summary>
    public bool IsNull => IsPlain && Value is "" or "~" or "null" or "Null" or "NULL";

    public override string KindName => "a scalar";
}
