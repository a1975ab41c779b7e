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
    /// <summary>
    /// Several TLS connections join one session as queues (lanes): the first CONNECT negotiates the count
    /// (<see cref="IsotunExtensions.QueuesHeader"/>), the others name their index (<see cref="IsotunExtensions.QueueHeader"/>).
    /// </summary>
    Queues = 4,
    /// <summary>
    /// With <see cref="Gso"/>: UDP super-packets (gso_type UDP_L4) may flow too. A side whose TUN lacks USO cuts
    /// them before its TUN write; a peer without this extension gets them cut into datagrams.
    /// </summary>
    Uso = 8,
}

public static class IsotunExtensions
{
    /// <summary>Request and response header. Stock peers ignore it, so they are never offered anything.</summary>
    public const string Header = "X-Isotun-Extensions";

    /// <summary>On the first CONNECT: how many queues the client wants; in the reply: how many it may open (1..<see cref="MaxQueues"/>).</summary>
    public const string QueuesHeader = "X-Isotun-Queues";

    /// <summary>On every further CONNECT of a session: which queue (1..count-1) this connection is.</summary>
    public const string QueueHeader = "X-Isotun-Queue";

    /// <summary>Most queues a session may have: bounds the memory and TUN queues one client can claim.</summary>
    public const int MaxQueues = 16;

    /// <summary>
    /// A queue count or index header: a plain decimal number in [<paramref name="min"/>, <paramref name="max"/>],
    /// else null (absent, malformed or out of range; the caller decides which of those is an error).
    /// </summary>
    public static int? ParseCount(string? value, int min, int max)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 3) return null;
        int n = 0;
        foreach (char c in value)
        {
            if (c is < '0' or > '9') return null;
            n = n * 10 + (c - '0');
        }
        return n >= min && n <= max ? n : null;
    }

    public static IsotunExtension Parse(string? value)
    {
        var result = IsotunExtension.None;
        if (string.IsNullOrEmpty(value) || value.Length > 256) return result;
        foreach (var token in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (token.Equals("batch", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Batch;
            else if (token.Equals("gso", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Gso;
            else if (token.Equals("queues", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Queues;
            else if (token.Equals("uso", StringComparison.OrdinalIgnoreCase)) result |= IsotunExtension.Uso;
        }
        return result;
    }

    public static string Format(IsotunExtension extensions)
    {
        var parts = new List<string>(4);
        if (extensions.HasFlag(IsotunExtension.Batch)) parts.Add("batch");
        if (extensions.HasFlag(IsotunExtension.Gso)) parts.Add("gso");
        if (extensions.HasFlag(IsotunExtension.Uso)) parts.Add("uso");
        if (extensions.HasFlag(IsotunExtension.Queues)) parts.Add("queues");
        return string.Join(", ", parts);
    }
}
