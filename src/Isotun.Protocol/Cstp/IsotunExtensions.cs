namespace Isotun.Protocol.Cstp;

/// <summary>Isotun-to-Isotun extensions, offered in the CONNECT request and accepted in the reply.</summary>
[Flags]
public enum IsotunExtension
{
    None = 0,
    /// <summary>Several frames per TLS record: writes of up to 256 KiB when frames are waiting.</summary>
    Batch = 1,
    /// <summary>GSO super-packets with their virtio-net header, as <see cref="CstpPacketType.IsotunGso"/> frames.</summary>
    Gso = 2,
}

public static class IsotunExtensions
{
    /// <summary>Request and response header. Stock peers ignore it, so they are never offered anything.</summary>
    public const string Header = "X-Isotun-Extensions";

    public static IsotunExtension Parse(string? value)
    {
        var result = IsotunExtension.None;
        if (string.IsNullOrEmpty(value) || value.Length > 256) return result;
        foreach (var token in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (token.Equals("batch", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Batch;
            else if (token.Equals("gso", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Gso;
        }
        return result;
    }

    public static string Format(IsotunExtension extensions)
    {
        var parts = new List<string>(2);
        if (extensions.HasFlag(IsotunExtension.Batch)) parts.Add("batch");
        if (extensions.HasFlag(IsotunExtension.Gso)) parts.Add("gso");
        return string.Join(", ", parts);
    }
}
