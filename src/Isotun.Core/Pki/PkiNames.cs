using System.Net;

namespace Isotun.Pki;

/// <summary>Checks and file-name mapping for the names certificates are issued for.</summary>
internal static class PkiNames
{
    /// <summary>Same rule as a tenant name in the configuration.</summary>
    public static bool IsValidTenant(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 31 || !IsLowerAlnum(name[0]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!IsLowerAlnum(c) && c != '-')
            {
                return false;
            }
        }

        return true;

        static bool IsLowerAlnum(char c) => char.IsAsciiDigit(c) || char.IsAsciiLetterLower(c);
    }

    /// <summary>An LDH host name (RFC 1123), optionally with a leading <c>*.</c> label.</summary>
    public static bool IsValidHostName(string? name, bool allowWildcard)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 253 || IPAddress.TryParse(name, out _))
        {
            return false;
        }

        var labels = name.Split('.');
        for (var i = 0; i < labels.Length; i++)
        {
            var label = labels[i];
            if (i == 0 && allowWildcard && label == "*" && labels.Length > 2)
            {
                continue;
            }

            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-')
            {
                return false;
            }

            foreach (var c in label)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '-')
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>An IP address written out in full: IPAddress.TryParse alone would read "10.1" as 10.0.0.1.</summary>
    public static bool TryParseIp(string text, out IPAddress address)
    {
        if (IPAddress.TryParse(text, out address!)
            && (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? text.Contains(':') : text.Count(c => c == '.') == 3))
        {
            return true;
        }

        address = IPAddress.None;
        return false;
    }

    /// <summary>Whether <paramref name="name"/> reads as an IPv4 address written short ("10.1", "1"): neither an address nor a name to issue for.</summary>
    public static bool IsShortIpv4(string name) => name.All(c => char.IsAsciiDigit(c) || c == '.') && IPAddress.TryParse(name, out _);

    /// <summary>Maps a name to a file-name stem of <c>[A-Za-z0-9._-]</c>; anything else becomes <c>_</c>.</summary>
    public static string FileStem(string name)
    {
        var chars = name.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            var c = chars[i];
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
            {
                chars[i] = '_';
            }
        }

        var stem = new string(chars);
        return stem is "." or ".." ? "_" + stem : stem;
    }
}
