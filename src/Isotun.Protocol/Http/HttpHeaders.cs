using System.Collections;

namespace Isotun.Protocol.Http;

/// <summary>
/// An ordered header list. Names compare case-insensitively; duplicates are kept because
/// some headers (Set-Cookie, X-CSTP-Split-Include) legitimately repeat.
/// </summary>
public sealed class HttpHeaders : IEnumerable<KeyValuePair<string, string>>
{
    private readonly List<KeyValuePair<string, string>> _items = new();

    /// <summary>Number of header lines.</summary>
    public int Count => _items.Count;

    /// <summary>
    /// The first Content-Length as a number; null when absent or not a plain decimal.
    /// Parsed heads have already been validated (digits only, duplicates agree, at most 2^31).
    /// </summary>
    public long? ContentLength
    {
        get
        {
            string? value = Get("Content-Length");
            return value is not null && HttpHeadParser.TryParseContentLength(value, out long length) ? length : null;
        }
    }

    /// <summary>Appends a header.</summary>
    public void Add(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        _items.Add(new KeyValuePair<string, string>(name, value));
    }

    /// <summary>The value of the first header with this name, or null.</summary>
    public string? Get(string name)
    {
        foreach (var item in _items)
        {
            if (string.Equals(item.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return item.Value;
            }
        }

        return null;
    }

    /// <summary>All values of headers with this name, in order.</summary>
    public IReadOnlyList<string> GetAll(string name)
    {
        List<string>? values = null;
        foreach (var item in _items)
        {
            if (string.Equals(item.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                (values ??= new List<string>()).Add(item.Value);
            }
        }

        return values ?? (IReadOnlyList<string>)Array.Empty<string>();
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
