using System.Net;
using System.Net.Sockets;

namespace Isotun.Protocol.Addressing;

/// <summary>
/// Strict IP literal parsing. <see cref="IPAddress.TryParse(string, out IPAddress)"/> accepts "10.1" (as 10.0.0.1) and "1";
/// a configuration file must say exactly what it means.
/// </summary>
public static class IpText
{
    public static bool TryParse(string? text, out IPAddress address)
    {
        address = IPAddress.None;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
        {
            return false;
        }

        if (text.Contains(':'))
        {
            if (IPAddress.TryParse(text, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6)
            {
                address = v6;
                return true;
            }

            return false;
        }

        var parts = text.Split('.');
        if (parts.Length != 4)
        {
            return false;
        }

        foreach (var part in parts)
        {
            if (part.Length is 0 or > 3 || !part.All(char.IsAsciiDigit))
            {
                return false;
            }
        }

        if (IPAddress.TryParse(text, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork)
        {
            address = v4;
            return true;
        }

        return false;
    }
}
