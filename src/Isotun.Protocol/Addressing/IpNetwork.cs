using System.Net;
using System.Net.Sockets;
using Isotun.Protocol.Ip;

namespace Isotun.Protocol.Addressing;

/// <summary>
/// An IPv4 or IPv6 prefix such as <c>10.10.0.0/24</c> or <c>fd00::/64</c>. Host bits are always zero.
/// Create with <see cref="TryParse"/>; the default value (null network) contains and overlaps nothing.
/// </summary>
public readonly record struct IpNetwork(IPAddress Network, int PrefixLength)
{
    /// <summary>The prefix as a mask, e.g. <c>255.255.255.0</c> or <c>ffff:ffff:ffff:ffff::</c>.</summary>
    public IPAddress Netmask
    {
        get
        {
            var key = IpKey.FromAddress(Network);
            return new IpKey(MaskFor(key.Version, PrefixLength), key.Version).ToAddress();
        }
    }

    /// <summary>A network from trusted text (a constant, a checked config); throws <see cref="FormatException"/> where <see cref="TryParse"/> says false.</summary>
    public static IpNetwork Parse(string text) =>
        TryParse(text, out var network) ? network : throw new FormatException($"not a network in address/prefix form: '{text}'");

    /// <summary>
    /// Parses <c>address/prefix</c>. Strict: IPv4 must be four plain decimal octets (no octal, no shorthand),
    /// IPv6 may not carry a scope id, the prefix must be in range and the host bits must be zero.
    /// </summary>
    public static bool TryParse(string text, out IpNetwork network)
    {
        network = default;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
        {
            return false;
        }

        int slash = text.IndexOf('/');
        if (slash <= 0 || slash != text.LastIndexOf('/'))
        {
            return false;
        }

        var addressText = text.AsSpan(0, slash);
        var prefixText = text.AsSpan(slash + 1);
        if (prefixText.IsEmpty || prefixText.Length > 3 || !IsAllDigits(prefixText))
        {
            return false;
        }

        int prefix = int.Parse(prefixText, provider: System.Globalization.CultureInfo.InvariantCulture);
        IPAddress? address;
        if (addressText.Contains(':'))
        {
            if (addressText.Contains('%') || !IPAddress.TryParse(addressText, out address) || address.AddressFamily != AddressFamily.InterNetworkV6 || prefix > 128)
            {
                return false;
            }
        }
        else if (!IsStrictDottedQuad(addressText) || !IPAddress.TryParse(addressText, out address) || prefix > 32)
        {
            return false;
        }

        var key = IpKey.FromAddress(address);
        if ((key.Value & ~MaskFor(key.Version, prefix)) != 0)
        {
            return false;
        }

        network = new IpNetwork(address, prefix);
        return true;
    }

    /// <summary>True when <paramref name="address"/> is of the same family and inside the prefix.</summary>
    public bool Contains(IPAddress address)
    {
        if (Network is null || address is null)
        {
            return false;
        }

        var net = IpKey.FromAddress(Network);
        var other = IpKey.FromAddress(address);
        return net.Version == other.Version && (other.Value & MaskFor(net.Version, PrefixLength)) == net.Value;
    }

    /// <summary>True when the two prefixes share at least one address (same family only).</summary>
    public bool Overlaps(IpNetwork other)
    {
        if (Network is null || other.Network is null)
        {
            return false;
        }

        var a = IpKey.FromAddress(Network);
        var b = IpKey.FromAddress(other.Network);
        if (a.Version != b.Version)
        {
            return false;
        }

        var mask = MaskFor(a.Version, Math.Min(PrefixLength, other.PrefixLength));
        return (a.Value & mask) == (b.Value & mask);
    }

    /// <summary><c>network/prefix</c>, e.g. <c>10.10.0.0/24</c>.</summary>
    public override string ToString() => Network is null ? string.Empty : $"{Network}/{PrefixLength}";

    // Mask in the same representation as IpKey.Value (IPv4 in the low 32 bits).
    internal static UInt128 MaskFor(byte version, int prefix)
    {
        if (version == 4)
        {
            return prefix <= 0 ? 0 : uint.MaxValue << (32 - Math.Min(prefix, 32));
        }

        return prefix <= 0 ? UInt128.Zero : UInt128.MaxValue << (128 - Math.Min(prefix, 128));
    }

    private static bool IsAllDigits(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return true;
    }

    // IPAddress.TryParse follows inet_aton ("10.1" and "010.0.0.1" parse); configuration should not.
    private static bool IsStrictDottedQuad(ReadOnlySpan<char> text)
    {
        int parts = 0;
        foreach (var range in text.Split('.'))
        {
            var part = text[range];
            if (++parts > 4 || part.IsEmpty || part.Length > 3 || !IsAllDigits(part) || (part.Length > 1 && part[0] == '0'))
            {
                return false;
            }

            if (int.Parse(part, provider: System.Globalization.CultureInfo.InvariantCulture) > 255)
            {
                return false;
            }
        }

        return parts == 4;
    }
}
