using System.Text;
using Isotun.Protocol.Cookies;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// A <c>webvpn</c> cookie as a client presents it, opened with a fixed key at a fixed time. The input bytes are the
/// cookie's characters one for one (Latin-1), so every ASCII and non-ASCII case is reachable. An opened ticket seals
/// and opens again to the same ticket; nothing else opens.
/// </summary>
public sealed class CookieTarget : IFuzzTarget
{
    /// <summary>The fixed key the seeds were sealed with: 32 bytes 0x00..0x1f.</summary>
    public static byte[] Key { get; } = Enumerable.Range(0, CookieSealer.KeyLength).Select(i => (byte)i).ToArray();

    /// <summary>The fixed "now": seeds sealed to expire after it open as Ok, the others as Expired.</summary>
    public static DateTimeOffset Now { get; } = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly CookieSealer Sealer = new(Key, new FixedTime(Now));

    public string Name => "cookie";

    public string Description => "webvpn cookies (CookieSealer.TryOpen with a fixed key and clock), with a seal round trip";

    public void Run(ReadOnlySpan<byte> input)
    {
        string cookie = Encoding.Latin1.GetString(input);
        var result = Sealer.TryOpen(cookie, out var ticket);
        Invariant.Defined(result);
        Invariant.That((result == CookieOpenResult.Ok) == (ticket is not null));
        if (ticket is null)
        {
            return;
        }

        Invariant.That(cookie.Length <= CookieSealer.MaxCookieLength);
        Invariant.That(ticket.ExpiresAt > Now);
        Invariant.That(Encoding.UTF8.GetByteCount(ticket.Tenant) <= CookieSealer.MaxNameBytes);
        Invariant.That(Encoding.UTF8.GetByteCount(ticket.User) <= CookieSealer.MaxNameBytes);
        var again = Sealer.TryOpen(Sealer.Seal(ticket), out var reopened);
        Invariant.That(again == CookieOpenResult.Ok && reopened == ticket);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
