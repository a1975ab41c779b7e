using System.Globalization;

namespace Isotun.Config;

/// <summary>
/// Reads typed values out of a <see cref="YamlTreeNode"/> tree and collects every problem with its key path instead of stopping
/// at the first. Absent keys and null values both mean "use the default".
/// </summary>
internal sealed class ConfigWalker(string baseDirectory)
{
    public const string RootPath = "(root)";

    public List<ConfigError> Errors { get; } = [];

    public string BaseDirectory { get; } = baseDirectory;

    public static string Child(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    public static string Item(string path, int index) => $"{path}[{index.ToString(CultureInfo.InvariantCulture)}]";

    public static bool IsAbsent(YamlTreeNode? node) => node is null or YamlTreeScalar { IsNull: true };

    public void Error(string path, string message) => Errors.Add(new ConfigError(path.Length == 0 ? RootPath : path, message));

    /// <summary>
    /// The values of the known keys of <paramref name="mapping"/> (first occurrence wins), after reporting unknown keys
    /// (with a suggestion), duplicate keys and keys that are not scalars.
    /// </summary>
    public Dictionary<string, YamlTreeNode> Keys(YamlTreeMapping? mapping, string path, IReadOnlyList<string> known)
    {
        var values = new Dictionary<string, YamlTreeNode>(StringComparer.Ordinal);
        if (mapping is null)
        {
            return values;
        }

        var firstLine = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (keyNode, value) in mapping.Entries)
        {
            if (keyNode is not YamlTreeScalar { IsNull: false } keyScalar)
            {
                Error(path, $"line {keyNode.Line}: keys must be plain names, found {keyNode.KindName}");
                continue;
            }

            var key = keyScalar.Value;
            var keyPath = Child(path, key);
            if (firstLine.TryGetValue(key, out var line))
            {
                Error(keyPath, $"duplicate key (first on line {line})");
                continue;
            }

            firstLine[key] = keyScalar.Line;
            if (!known.Contains(key))
            {
                var suggestion = KeySuggester.Suggest(key, known);
                Error(keyPath, suggestion is null ? "unknown key" : $"unknown key; did you mean '{suggestion}'?");
                continue;
            }

            values[key] = value;
        }

        return values;
    }

    /// <summary>Null when absent; a non-mapping is an error.</summary>
    public YamlTreeMapping? Mapping(YamlTreeNode? node, string path)
    {
        if (IsAbsent(node))
        {
            return null;
        }

        if (node is YamlTreeMapping mapping)
        {
            return mapping;
        }

        Error(path, $"expected a mapping, found {node!.KindName}");
        return null;
    }

    /// <summary>Null when absent; a non-sequence is an error.</summary>
    public YamlTreeSequence? Sequence(YamlTreeNode? node, string path)
    {
        if (IsAbsent(node))
        {
            return null;
        }

        if (node is YamlTreeSequence sequence)
        {
            return sequence;
        }

        Error(path, $"expected a sequence (a list), found {node!.KindName}");
        return null;
    }

    /// <summary>The trimmed scalar text; null when absent or not a scalar (the latter is an error).</summary>
    public string? Text(YamlTreeNode? node, string path)
    {
        if (IsAbsent(node))
        {
            return null;
        }

        if (node is YamlTreeScalar scalar)
        {
            return scalar.Value.Trim();
        }

        Error(path, $"expected a single value, found {node!.KindName}");
        return null;
    }

    /// <summary>true/yes/on or false/no/off (any case), or the default (absent or after an error).</summary>
    public bool Boolean(YamlTreeNode? node, string path, bool defaultValue)
    {
        var text = Text(node, path);
        switch (text?.ToLowerInvariant())
        {
            case null: return defaultValue;
            case "true" or "yes" or "on": return true;
            case "false" or "no" or "off": return false;
            default:
                Error(path, "must be true or false");
                return defaultValue;
        }
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>], or the default (absent or after an error).</summary>
    public int Integer(YamlTreeNode? node, string path, int defaultValue, int min, int max)
    {
        var text = Text(node, path);
        if (text is null)
        {
            return defaultValue;
        }

        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            Error(path, "must be an integer");
            return defaultValue;
        }

        if (value < min || value > max)
        {
            Error(path, $"must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}");
            return defaultValue;
        }

        return value;
    }

    /// <summary>A path resolved against the configuration directory; null when absent or invalid (the latter is an error).</summary>
    public string? FilePath(YamlTreeNode? node, string path)
    {
        var text = Text(node, path);
        if (text is null)
        {
            return null;
        }

        if (text.Length == 0 || text.Contains('\0'))
        {
            Error(path, "must be a file path");
            return null;
        }

        return Resolve(text);
    }

    public string Resolve(string relativeOrAbsolute) => Path.GetFullPath(relativeOrAbsolute, BaseDirectory);

    /// <summary>The scalar items of a list with their paths; empty when absent. Non-scalar items are errors.</summary>
    public List<(string Text, string Path)> TextList(YamlTreeNode? node, string path)
    {
        var items = new List<(string, string)>();
        var sequence = Sequence(node, path);
        if (sequence is null)
        {
            return items;
        }

        for (var i = 0; i < sequence.Items.Count; i++)
        {
            var itemPath = Item(path, i);
            var text = Text(sequence.Items[i], itemPath);
            if (text is null)
            {
                if (IsAbsent(sequence.Items[i]))
                {
                    Error(itemPath, "empty list item");
                }

                continue;
            }

            items.Add((text, itemPath));
        }

        return items;
    }
}
