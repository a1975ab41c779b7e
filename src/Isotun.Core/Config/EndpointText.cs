using System.Globalization;
using System.Net;
using Isotun.Protocol.Addressing;

namespace Isotun.Config;

/// <summary>Parses listen addresses: "ipv4:port" or "[ipv6]:port", IP literals only, port 1-65535.</summary>
internal static class EndpointText
{
    public static bool TryParse(string text, out IPEndPoint endpoint)
    {
        endpoint = new IPEndPoint(IPAddress.Any, 0);
        string hostText;
        string portText;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0)
            {
                return false;
            }

            hostText = text[1..close];
            portText = text[(close + 2)..];
            if (!hostText.Contains(':'))
            {
                return false;
            }
        }
        else
        {
            var colon = text.IndexOf(':');
            if (colon <= 0 || colon != text.LastIndexOf(':'))
            {
                return false;
            }

            hostText = text[..colon];
            portText = text[(colon + 1)..];
        }

        if (!IpText.TryParse(hostText, out var address)
            || portText.Length is 0 or > 5
            || !portText.All(char.IsAsciiDigit)
            || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
