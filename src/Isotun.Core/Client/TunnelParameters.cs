using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Http;

namespace Isotun.Client;

/// <summary>What the server's CONNECT reply gave this client: address, MTU, routes, DNS and timers.</summary>
public sealed record TunnelParameters(
    IPAddress Address,
    IPAddress? Netmask,
    int Mtu,
    IReadOnlyList<IpNetwork> SplitInclude,
    IReadOnlyList<IPAddress> Dns,
    int Dpd,
    int Keepalive)
{
    /// <summary>The IPv6 address inside the tunnel (dual stack), from X-CSTP-Address-IP6, or null.</summary>
    public IPAddress? Address6 { get; init; }

    public const int MinMtu = 576;
    public const int MaxMtu = 65535 - 8;

    /// <summary>Parses the X-CSTP headers. A missing or bad MTU or address is an error, as for openconnect.</summary>
    public static TunnelParameters Parse(HttpResponseHead head)
    {
        var h = head.Headers;
        string? mtuText = h.Get("X-CSTP-MTU") ?? h.Get("X-DTLS-MTU");
        if (mtuText is null) throw new ClientException(ClientExitCode.ProtocolError, "server sent no MTU (X-CSTP-MTU)");
        if (!int.TryParse(mtuText, out int mtu) || mtu < MinMtu || mtu > MaxMtu)
            throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unusable MTU '{Bounded(mtuText)}'");
        string? addrText = h.Get("X-CSTP-Address");
        if (addrText is null) throw new ClientException(ClientExitCode.ProtocolError, "server sent no IP address (X-CSTP-Address)");
        // Strict: IPAddress.TryParse would take "10.10.0" as 10.10.0.0.
        if (!Protocol.Addressing.IpText.TryParse(addrText, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unusable address '{Bounded(addrText)}'");
        IPAddress? mask = null;
        foreach (var m in h.GetAll("X-CSTP-Netmask"))
            if (!m.Contains(':') && IPAddress.TryParse(m, out var parsed)) mask = parsed;

        var routes = new List<IpNetwork>();
        foreach (var r in h.GetAll("X-CSTP-Split-Include").Concat(h.GetAll("X-CSTP-Split-Include-IP6")))
            if (TryParseRoute(r, out var net)) routes.Add(net);
        var dns = new List<IPAddress>();
        foreach (var d in h.GetAll("X-CSTP-DNS"))
            if (IPAddress.TryParse(d, out var a) && dns.Count < 3) dns.Add(a);
        int dpd = ParseSeconds(h.Get("X-CSTP-DPD"), 30);
        int keepalive = ParseSeconds(h.Get("X-CSTP-Keepalive"), 20);
        IPAddress? address6 = null;
        if (h.Get("X-CSTP-Address-IP6") is { } a6 && IPAddress.TryParse(a6.Split('/')[0], out var parsed6)
            && parsed6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
            address6 = parsed6;
        return new TunnelParameters(address, mask, mtu, routes, dns, dpd, keepalive) { Address6 = address6 };
    }

    /// <summary>"a.b.c.d/m.m.m.m" or "a.b.c.d/len" or "v6/len".</summary>
    public static bool TryParseRoute(string text, out IpNetwork network)
    {
        network = default;
        var parts = text.Split('/');
        if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var addr)) return false;
        int prefix;
        // A dotted mask; a bare number is a prefix length (IPAddress.TryParse would read "64" as 0.0.0.64).
        if (parts[1].Contains('.') && IPAddress.TryParse(parts[1], out var mask) && mask.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            uint m = (uint)IPAddress.NetworkToHostOrder(BitConverter.ToInt32(mask.GetAddressBytes()));
            prefix = System.Numerics.BitOperations.PopCount(m);
            if (prefix != 32 && (m << prefix) != 0) return false; // not contiguous
        }
        else if (!int.TryParse(parts[1], out prefix)) return false;
        // Servers may send host bits; keep only the network part.
        var bytes = addr.GetAddressBytes();
        if (prefix < 0 || prefix > bytes.Length * 8) return false;
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff << (8 - keep));
        }
        return IpNetwork.TryParse($"{new IPAddress(bytes)}/{prefix}", out network);
    }

    private static int ParseSeconds(string? text, int fallback) =>
        int.TryParse(text, out int v) && v > 0 && v <= 86400 ? v : fallback;

    private static string Bounded(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
