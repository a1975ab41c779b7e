using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Text;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Http;

namespace Isotun.Protocol.Cstp;

/// <summary>
/// The <c>200 CONNECTED</c> reply to <c>CONNECT /CSCOSSLC/tunnel</c>: the tunnel's address, MTU, routes, DNS and
/// timers as X-CSTP headers, plus the Isotun extension headers. The server writes it with <see cref="Write"/>; the
/// client reads it with <see cref="TryParse"/>. Stock openconnect reads these headers, so the bytes are pinned by tests.
/// </summary>
public sealed record ConnectReply
{
    /// <summary>Smallest MTU a client accepts (the IPv4 minimum datagram size).</summary>
    public const int MinMtu = 576;

    /// <summary>Largest MTU a client accepts: a CSTP frame must fit its 16-bit length.</summary>
    public const int MaxMtu = 65535 - 8;

    /// <summary>DPD interval a client uses when the server sends none or an unusable one.</summary>
    public const int DefaultDpd = 30;

    /// <summary>Keepalive interval a client uses when the server sends none or an unusable one.</summary>
    public const int DefaultKeepalive = 20;

    /// <summary>Most DNS servers a client keeps, as openconnect.</summary>
    public const int MaxDns = 3;

    /// <summary>Longest header value quoted back in a parse problem.</summary>
    private const int QuoteLength = 40;

    /// <summary><c>X-CSTP-Address</c>: the client's IPv4 address in the tunnel.</summary>
    public required IPAddress Address { get; init; }

    /// <summary><c>X-CSTP-Netmask</c>, or null.</summary>
    public IPAddress? Netmask { get; init; }

    /// <summary><c>X-CSTP-Address-IP6</c> (dual stack), or null.</summary>
    public IPAddress? Address6 { get; init; }

    /// <summary>
    /// The IPv6 network <see cref="Address6"/> is on. Written as the prefix length of <c>X-CSTP-Address-IP6</c> and as a
    /// <c>X-CSTP-Split-Include-IP6</c> right after it; parsed from the prefix length only (the route is in <see cref="SplitInclude"/>).
    /// </summary>
    public IpNetwork? Network6 { get; init; }

    /// <summary><c>X-CSTP-DNS</c> servers, in order.</summary>
    public IReadOnlyList<IPAddress> Dns { get; init; } = [];

    /// <summary><c>X-CSTP-Default-Domain</c>, or null.</summary>
    public string? DefaultDomain { get; init; }

    /// <summary>
    /// <c>X-CSTP-Split-Include</c> (IPv4, written with a dotted mask) and <c>X-CSTP-Split-Include-IP6</c> routes.
    /// Written in order; parsed IPv4 headers first, then IPv6 ones.
    /// </summary>
    public IReadOnlyList<IpNetwork> SplitInclude { get; init; } = [];

    /// <summary>
    /// <c>X-CSTP-Split-Exclude</c> and <c>X-CSTP-Split-Exclude-IP6</c> routes (ocserv's <c>no-route</c>): networks kept
    /// off the tunnel. Parsed only (a client reads them); an Isotun server sends none.
    /// </summary>
    public IReadOnlyList<IpNetwork> SplitExclude { get; init; } = [];

    /// <summary><c>X-CSTP-DPD</c> seconds.</summary>
    public int Dpd { get; init; } = DefaultDpd;

    /// <summary><c>X-CSTP-Keepalive</c> seconds.</summary>
    public int Keepalive { get; init; } = DefaultKeepalive;

    /// <summary><c>X-CSTP-Idle-Timeout</c> seconds; null is <c>none</c>.</summary>
    public int? IdleTimeout { get; init; }

    /// <summary><c>X-CSTP-Session-Timeout</c> seconds; null is <c>none</c>.</summary>
    public int? SessionTimeout { get; init; }

    /// <summary><c>X-CSTP-Server-Name</c>, or null.</summary>
    public string? ServerName { get; init; }

    /// <summary><c>X-CSTP-Base-MTU</c>, or null.</summary>
    public int? BaseMtu { get; init; }

    /// <summary><c>X-CSTP-MTU</c> (or, parsed, <c>X-DTLS-MTU</c> when no CSTP one was sent).</summary>
    public required int Mtu { get; init; }

    /// <summary><see cref="IsotunExtensions.Header"/>: the extensions the server accepted. Stock servers send none.</summary>
    public IsotunExtension Extensions { get; init; }

    /// <summary><see cref="IsotunExtensions.QueuesHeader"/>: the queue count, with <see cref="IsotunExtension.Queues"/>; 1 when absent or unusable.</summary>
    public int Queues { get; init; } = 1;

    /// <summary><see cref="IsotunExtensions.QueueHeader"/>: this connection's queue index, with <see cref="IsotunExtension.Queues"/>; 0 for the primary.</summary>
    public int Queue { get; init; }

    /// <summary>
    /// The whole reply head, status line to blank line, in one buffer (the head goes out in its own TLS write).
    /// Header order and spelling are what openconnect has been tested against; change them only with the golden tests.
    /// </summary>
    public byte[] Write()
    {
        var sb = new StringBuilder(1024);
        sb.Append("HTTP/1.1 200 CONNECTED\r\n");
        Line(sb, "X-CSTP-Version", "1");
        if (ServerName is not null) Line(sb, "X-CSTP-Server-Name", ServerName);
        Line(sb, "X-CSTP-Address", Address.ToString());
        if (Netmask is not null) Line(sb, "X-CSTP-Netmask", Netmask.ToString());
        if (Address6 is not null && Network6 is { } n6)
        {
            Line(sb, "X-CSTP-Address-IP6", $"{Address6}/{n6.PrefixLength.ToString(CultureInfo.InvariantCulture)}");
            Line(sb, "X-CSTP-Split-Include-IP6", n6.ToString());
        }
        foreach (var dns in Dns) Line(sb, "X-CSTP-DNS", dns.ToString());
        if (DefaultDomain is not null) Line(sb, "X-CSTP-Default-Domain", DefaultDomain);
        foreach (var r in SplitInclude)
        {
            if (r.Network.AddressFamily == AddressFamily.InterNetwork)
                Line(sb, "X-CSTP-Split-Include", $"{r.Network}/{r.Netmask}");
            else
                Line(sb, "X-CSTP-Split-Include-IP6", r.ToString());
        }
        Line(sb, "X-CSTP-Tunnel-All-DNS", "false");
        Line(sb, "X-CSTP-DPD", Number(Dpd));
        Line(sb, "X-CSTP-Keepalive", Number(Keepalive));
        Line(sb, "X-CSTP-Idle-Timeout", IdleTimeout is { } idle ? Number(idle) : "none");
        // SslStream cannot renegotiate and TLS 1.3 has no renegotiation: never offer "ssl".
        Line(sb, "X-CSTP-Rekey-Method", "none");
        Line(sb, "X-CSTP-Session-Timeout", SessionTimeout is { } session ? Number(session) : "none");
        Line(sb, "X-CSTP-Disconnected-Timeout", "none");
        Line(sb, "X-CSTP-Keep", "true");
        Line(sb, "X-CSTP-TCP-Keepalive", "true");
        Line(sb, "X-CSTP-License", "accept");
        if (BaseMtu is { } baseMtu) Line(sb, "X-CSTP-Base-MTU", Number(baseMtu));
        Line(sb, "X-CSTP-MTU", Number(Mtu));
        if (Extensions != IsotunExtension.None) Line(sb, IsotunExtensions.Header, IsotunExtensions.Format(Extensions));
        if (Extensions.HasFlag(IsotunExtension.Queues))
        {
            Line(sb, IsotunExtensions.QueuesHeader, Number(Queues));
            if (Queue > 0) Line(sb, IsotunExtensions.QueueHeader, Number(Queue));
        }
        sb.Append("\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    /// <summary>
    /// Whether a tunnel address can be a host's own unicast address: not unspecified, loopback, link-local, multicast,
    /// broadcast or reserved (240.0.0.0/4). A server that gives one of those would have the client take it on its TUN:
    /// a loopback or link-local address there shadows the host's own.
    /// </summary>
    public static bool IsHostAddress(IPAddress address)
    {
        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)) return false;
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
            return !address.IsIPv6LinkLocal && !address.IsIPv6Multicast && !address.IsIPv4MappedToIPv6;
        var b = address.GetAddressBytes();
        return b[0] != 0 && b[0] < 224 && !(b[0] == 169 && b[1] == 254);
    }

    /// <summary>
    /// Reads a CONNECT reply's headers. Never throws on peer input: a missing or unusable MTU or address is an outcome,
    /// with <paramref name="problem"/> quoting the offending value (at most 40 characters, control characters replaced);
    /// unusable optional headers are skipped. The first MTU, address and IPv6 address count; the last usable netmask does.
    /// </summary>
    public static ConnectReplyParseResult TryParse(HttpHeaders headers, out ConnectReply? reply, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(headers);
        reply = null;
        problem = null;
        string? mtuText = headers.Get("X-CSTP-MTU") ?? headers.Get("X-DTLS-MTU");
        if (mtuText is null) return ConnectReplyParseResult.NoMtu;
        if (!TryNumber(mtuText, out int mtu) || mtu < MinMtu || mtu > MaxMtu)
        {
            problem = Quote(mtuText);
            return ConnectReplyParseResult.BadMtu;
        }
        string? addressText = headers.Get("X-CSTP-Address");
        if (addressText is null) return ConnectReplyParseResult.NoAddress;
        if (!TryAddress(addressText, out var address) || address.AddressFamily != AddressFamily.InterNetwork || !IsHostAddress(address))
        {
            problem = Quote(addressText);
            return ConnectReplyParseResult.BadAddress;
        }

        IPAddress? netmask = null;
        foreach (var m in headers.GetAll("X-CSTP-Netmask"))
            if (TryAddress(m, out var parsed) && parsed.AddressFamily == AddressFamily.InterNetwork) netmask = parsed;

        IPAddress? address6 = null;
        IpNetwork? network6 = null;
        if (headers.Get("X-CSTP-Address-IP6") is { } a6Text)
        {
            int slash = a6Text.IndexOf('/');
            if (TryAddress(slash < 0 ? a6Text : a6Text[..slash], out var a6) && a6.AddressFamily == AddressFamily.InterNetworkV6 && IsHostAddress(a6))
            {
                address6 = a6;
                if (slash >= 0 && TryParseRoute(a6Text, out var net6)) network6 = net6;
            }
        }

        var routes = new List<IpNetwork>();
        foreach (var r in headers.GetAll("X-CSTP-Split-Include"))
            if (TryParseRoute(r, out var net)) routes.Add(net);
        foreach (var r in headers.GetAll("X-CSTP-Split-Include-IP6"))
            if (TryParseRoute(r, out var net)) routes.Add(net);

        var excluded = new List<IpNetwork>();
        foreach (var r in headers.GetAll("X-CSTP-Split-Exclude"))
            if (TryParseRoute(r, out var net)) excluded.Add(net);
        foreach (var r in headers.GetAll("X-CSTP-Split-Exclude-IP6"))
            if (TryParseRoute(r, out var net)) excluded.Add(net);

        var dns = new List<IPAddress>();
        foreach (var d in headers.GetAll("X-CSTP-DNS"))
            if (dns.Count < MaxDns && TryAddress(d, out var server)) dns.Add(server);

        var extensions = IsotunExtensions.Parse(headers.Get(IsotunExtensions.Header));
        reply = new ConnectReply
        {
            Address = address,
            Netmask = netmask,
            Address6 = address6,
            Network6 = network6,
            Dns = dns,
            DefaultDomain = Text(headers.Get("X-CSTP-Default-Domain")),
            SplitInclude = routes,
            SplitExclude = excluded,
            Dpd = Seconds(headers.Get("X-CSTP-DPD")) ?? DefaultDpd,
            Keepalive = Seconds(headers.Get("X-CSTP-Keepalive")) ?? DefaultKeepalive,
            IdleTimeout = Seconds(headers.Get("X-CSTP-Idle-Timeout")),
            SessionTimeout = Seconds(headers.Get("X-CSTP-Session-Timeout")),
            ServerName = Text(headers.Get("X-CSTP-Server-Name")),
            BaseMtu = TryNumber(headers.Get("X-CSTP-Base-MTU"), out int baseMtu) && baseMtu > 0 ? baseMtu : null,
            Mtu = mtu,
            Extensions = extensions,
            Queues = IsotunExtensions.ParseCount(headers.Get(IsotunExtensions.QueuesHeader), 1, IsotunExtensions.MaxQueues) ?? 1,
            Queue = IsotunExtensions.ParseCount(headers.Get(IsotunExtensions.QueueHeader), 1, IsotunExtensions.MaxQueues - 1) ?? 0,
        };
        return ConnectReplyParseResult.Ok;
    }

    /// <summary>
    /// A split route: <c>a.b.c.d/m.m.m.m</c> (contiguous), <c>a.b.c.d/len</c> or <c>v6/len</c>. Host bits are cleared, as
    /// servers send them; addresses are strict literals and a bare number is a prefix length, never an address.
    /// </summary>
    public static bool TryParseRoute(string? text, out IpNetwork network)
    {
        network = default;
        if (string.IsNullOrEmpty(text) || text.Length > 100) return false;
        int slash = text.IndexOf('/');
        if (slash < 0 || slash != text.LastIndexOf('/')) return false;
        if (!TryAddress(text[..slash], out var address)) return false;
        string maskText = text[(slash + 1)..];
        int prefix;
        // IPAddress.TryParse would read "64" as 0.0.0.64, which made "fd00:10::/64" a /1.
        if (maskText.Contains('.'))
        {
            if (!TryAddress(maskText, out var mask) || mask.AddressFamily != AddressFamily.InterNetwork) return false;
            uint m = BinaryPrimitives.ReadUInt32BigEndian(mask.GetAddressBytes());
            prefix = BitOperations.PopCount(m);
            if (prefix != 32 && (m << prefix) != 0) return false; // not contiguous
        }
        else if (!TryNumber(maskText, out prefix))
        {
            return false;
        }
        var bytes = address.GetAddressBytes();
        if (prefix < 0 || prefix > bytes.Length * 8) return false;
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff << (8 - keep));
        }
        network = new IpNetwork(new IPAddress(bytes), prefix);
        return true;
    }

    /// <summary>A strict IP literal (<see cref="IpText"/>) without an IPv6 scope id, which means nothing across the tunnel.</summary>
    private static bool TryAddress(string text, out IPAddress address)
    {
        address = IPAddress.None;
        return !text.Contains('%') && IpText.TryParse(text, out address);
    }

    private static void Line(StringBuilder sb, string name, string value)
    {
        // The server's own values; a line break in one would forge headers.
        if (value.AsSpan().IndexOfAny('\r', '\n') >= 0) throw new ArgumentException($"{name}: a header value may not hold a line break", nameof(value));
        sb.Append(name).Append(": ").Append(value).Append("\r\n");
    }

    private static string Number(int n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>A plain decimal integer (an optional sign, as <c>int.TryParse</c> takes it), culture-free.</summary>
    private static bool TryNumber(string? text, out int value) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);

    /// <summary>Seconds in (0, 1 day]; else null (absent, <c>none</c>, malformed or out of range).</summary>
    private static int? Seconds(string? text) => TryNumber(text, out int v) && v > 0 && v <= 86400 ? v : null;

    /// <summary>An informational text header: kept when short and printable, else dropped.</summary>
    private static string? Text(string? value) =>
        value is { Length: > 0 and <= 255 } && !value.Any(char.IsControl) ? value : null;

    /// <summary>A peer's value as it may be quoted in a message: bounded and without control characters.</summary>
    private static string Quote(string value)
    {
        var chars = (value.Length > QuoteLength ? value[..QuoteLength] : value).ToCharArray();
        for (int i = 0; i < chars.Length; i++)
            if (char.IsControl(chars[i])) chars[i] = '?';
        return new string(chars) + (value.Length > QuoteLength ? "…" : "");
    }
}
