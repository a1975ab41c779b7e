using System.Globalization;
using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.Config;

/// <summary>Parses "address/prefix" with zero host bits, IPv4 or IPv6.</summary>
internal static class CidrParser
{
    public static CidrParseOutcome TryParse(string text, out IPNetwork network)
    {
        network = default;
        var slash = text.IndexOf('/');
        if (slash <= 0 || slash != text.LastIndexOf('/') || slash == text.Length - 1)
        {
            return CidrParseOutcome.Malformed;
        }

        var addressText = text[..slash];
        var prefixText = text[(slash + 1)..];
        if (addressText.Contains('%') || !IpText.TryParse(addressText, out var address))
        {
            return CidrParseOutcome.BadAddress;
        }

        var bytes = address.GetAddressBytes();
        var width = bytes.Length * 8;
        if (prefixText.Length > 3
            || !prefixText.All(char.IsAsciiDigit)
            || !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out var prefix)
            || prefix > width)
        {
            return CidrParseOutcome.BadPrefix;
        }

        var hostBitsSet = false;
        for (var bit = prefix; bit < width; bit++)
        {
            var mask = (byte)(0x80 >> (bit % 8));
            if ((bytes[bit / 8] & mask) != 0)
            {
                hostBitsSet = true;
                bytes[bit / 8] &= (byte)~mask;
            }
        }

        network = new IPNetwork(new IPAddress(bytes), prefix);
        return hostBitsSet ? CidrParseOutcome.HostBitsSet : CidrParseOutcome.Ok;
    }

    /// <summary>The network as the server and the protocol code carry it.</summary>
    public static IpNetwork ToIpNetwork(this IPNetwork n) => new(n.BaseAddress, n.PrefixLength);

    public static IPNetwork ToIPNetwork(this IpNetwork n) => new(n.Network, n.PrefixLength);

    public static bool Overlaps(IPNetwork a, IPNetwork b) =>
        a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily && (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));
}
