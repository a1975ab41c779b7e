using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Isotun.Config;

/// <summary>
/// Builds a <see cref="YamlTreeNode"/> tree from YamlDotNet parser events. Unlike the representation model it keeps duplicate
/// keys (so they become ordinary errors next to all the others), refuses aliases and bounds nesting depth.
/// </summary>
internal sealed partial class YamlTreeReader
{
    private const int MaxDepth = 32;

    private readonly IParser _parser;

    // Where the last event ended, for errors that YamlDotNet raises without a position.
    private Mark _lastMark = Mark.Empty;

    private YamlTreeReader(IParser parser)
    {
        _parser = parser;
    }

    /// <summary>Parses one YAML document; <paramref name="root"/> is null for an empty document.</summary>
    public static bool TryRead(string yaml, out YamlTreeNode? root, out ConfigError? error)
    {
        root = null;
        error = null;
        var reader = new YamlTreeReader(new Parser(new StringReader(yaml)));
        try
        {
            root = reader.ReadDocument();
            return true;
        }
        catch (YamlException ex)
        {
            root = null;
            error = At(ex.Start, StripPosition(ex.Message));
            return false;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException or FormatException)
        {
            // YamlDotNet's scanner throws these on some malformed input (e.g. an unclosed flow sequence).
            root = null;
            error = At(reader._lastMark, "malformed YAML (check brackets, quotes and indentation)");
            return false;
        }
    }

    private YamlTreeNode? ReadDocument()
    {
        MoveNext();
        Expect<StreamStart>();
        if (_parser.Current is StreamEnd)
        {
            return null;
        }

        Expect<DocumentStart>();
        var root = ReadNode(depth: 0);
        Expect<DocumentEnd>();
        if (_parser.Current is DocumentStart start)
        {
            throw new YamlException(start.Start, start.End, "only one YAML document is allowed");
        }

        return root;
    }

    private void MoveNext()
    {
        _parser.MoveNext();
        if (_parser.Current is { } current)
        {
            _lastMark = current.End;
        }
    }

    private YamlTreeNode ReadNode(int depth)
    {
        var current = _parser.Current ?? throw new YamlException(_lastMark, _lastMark, "unexpected end of input");
        if (depth > MaxDepth)
        {
            throw new YamlException(current.Start, current.End, $"nesting deeper than {MaxDepth} levels");
        }

        switch (current)
        {
            case Scalar scalar:
                MoveNext();
                return new YamlTreeScalar(scalar.Start.Line, scalar.Start.Column, scalar.Value, scalar.Style == ScalarStyle.Plain);

            case SequenceStart sequenceStart:
            {
                var sequence = new YamlTreeSequence(sequenceStart.Start.Line, sequenceStart.Start.Column);
                MoveNext();
                while (_parser.Current is not SequenceEnd)
                {
                    sequence.Items.Add(ReadNode(depth + 1));
                }

                MoveNext();
                return sequence;
            }

            case MappingStart mappingStart:
            {
                var mapping = new YamlTreeMapping(mappingStart.Start.Line, mappingStart.Start.Column);
                MoveNext();
                while (_parser.Current is not MappingEnd)
                {
                    var key = ReadNode(depth + 1);
                    var value = ReadNode(depth + 1);
                    mapping.Entries.Add(new KeyValuePair<YamlTreeNode, YamlTreeNode>(key, value));
                }

                MoveNext();
                return mapping;
            }

            case AnchorAlias alias:
                throw new YamlException(alias.Start, alias.End, $"aliases (*{alias.Value}) are not supported");

            default:
                throw new YamlException(current.Start, current.End, $"unexpected {current.GetType().Name}");
        }
    }

    /// <summary>Checks that the current event is a <typeparamref name="T"/> and moves past it.</summary>
    private void Expect<T>()
        where T : ParsingEvent
    {
        var current = _parser.Current;
        if (current is null)
        {
            throw new YamlException(_lastMark, _lastMark, "unexpected end of input");
        }

        if (current is not T)
        {
            throw new YamlException(current.Start, current.End, $"expected {typeof(T).Name}, found {current.GetType().Name}");
        }

        MoveNext();
    }

    private static ConfigError At(Mark mark, string message) =>
        new("(yaml)", $"line {mark.Line}, column {mark.Column}: {message}");

    // YamlException messages start with "(Line: 1, Col: 2, Idx: 1) - (Line: ...): "; the position is reported separately.
    private static string StripPosition(string message) => PositionPrefix().Replace(message, string.Empty);

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex PositionPrefix();
}
