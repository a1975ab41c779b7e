using System.Globalization;
using System.Text;

namespace Isotun.State.Cluster;

/// <summary>
/// A time as the cluster's keys hold it: Unix seconds in ASCII digits. Read back clamped to the range a
/// <see cref="DateTimeOffset"/> can hold, so a value another node (or an operator) wrote wrong cannot throw.
/// </summary>
internal static class UnixSeconds
{
    private const long Max = 253402300799; // 9999-12-31T23:59:59Z

    public static byte[] Bytes(DateTimeOffset time) => Encoding.ASCII.GetBytes(time.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));

    /// <summary>The time in <paramref name="value"/>, or null when it holds no number.</summary>
    public static DateTimeOffset? Parse(ReadOnlySpan<byte> value) => Parse(Encoding.ASCII.GetString(value));

    /// <inheritdoc cref="Parse(ReadOnlySpan{byte})"/>
    public static DateTimeOffset? Parse(string value) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            ? DateTimeOffset.FromUnixTimeSeconds(Math.Min(seconds, Max))
            : null;

    /// <summary><paramref name="time"/> in whole seconds, as it reads back once written.</summary>
    public static DateTimeOffset Whole(DateTimeOffset time) => DateTimeOffset.FromUnixTimeSeconds(time.ToUnixTimeSeconds());
}
