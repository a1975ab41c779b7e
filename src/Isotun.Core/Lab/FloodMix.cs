using System.Globalization;

namespace Isotun.Lab;

/// <summary>What one connection of a flood does once it is connected.</summary>
public enum FloodKind
{
    /// <summary>Sends nothing.</summary>
    Idle,

    /// <summary>Sends the first bytes of a TLS ClientHello, then one more byte now and then, never the whole of it.</summary>
    Hello,

    /// <summary>Completes TLS, then sends the start of an HTTP request head, one more byte now and then, never its end.</summary>
    Head,
}

/// <summary>
/// How a flood's connections are shared among the kinds, as weights: <c>idle=45,hello=45,head=10</c>. A kind left out
/// has weight 0.
/// </summary>
public readonly record struct FloodMix(int Idle, int Hello, int Head)
{
    public const int MaxWeight = 1000;
    public static readonly FloodMix Default = new(45, 45, 10);

    public int Total => Idle + Hello + Head;

    /// <summary>
    /// The kind of slot number <paramref name="slot"/>. Every run of <see cref="Total"/> slots holds each kind exactly its
    /// weight's times, and the kinds are spread through the run (a stride near the golden ratio), so a shorter run, such as
    /// one source's connections, has about the mix too.
    /// </summary>
    public FloodKind KindOf(int slot)
    {
        int total = Total;
        int stride = Math.Max(1, total * 618 / 1000);
        while (Gcd(stride, total) != 1) stride++;
        int p = (int)((long)(slot % total) * stride % total);
        return p < Idle ? FloodKind.Idle : p < Idle + Hello ? FloodKind.Hello : FloodKind.Head;
    }

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);

    /// <summary>Reads <c>kind=weight</c> pairs, comma-separated; every kind at most once, weights 0..<see cref="MaxWeight"/>, not all 0.</summary>
    public static bool TryParse(string? text, out FloodMix mix, out string? error)
    {
        mix = default;
        error = null;
        if (string.IsNullOrWhiteSpace(text)) { error = "empty; e.g. idle=45,hello=45,head=10"; return false; }
        int? idle = null, hello = null, head = null;
        foreach (var part in text.Split(','))
        {
            var pair = part.Split('=');
            if (pair.Length != 2 || !int.TryParse(pair[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int weight) || weight > MaxWeight)
            {
                error = $"'{Quote(part)}' is not kind=weight (a whole number 0 to {MaxWeight})";
                return false;
            }
            string kind = pair[0].Trim();
            ref int? slot = ref idle;
            switch (kind)
            {
                case "idle": break;
                case "hello": slot = ref hello; break;
                case "head": slot = ref head; break;
                default:
                    error = $"unknown kind '{Quote(kind)}' (idle, hello, head)";
                    return false;
            }
            if (slot is not null) { error = $"{kind} is given twice"; return false; }
            slot = weight;
        }
        mix = new(idle ?? 0, hello ?? 0, head ?? 0);
        if (mix.Total == 0) { error = "every weight is 0"; return false; }
        return true;
    }

    public override string ToString() => $"idle={Idle},hello={Hello},head={Head}";

    private static string Quote(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
