using System.Net;
using System.Text;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;

namespace Isotun.UnitTests.Protocol.Cstp;

/// <summary>
/// The CONNECT reply's X-CSTP headers: what the server writes (pinned byte for byte, since stock openconnect reads it)
/// and what a client reads back. A peer's reply never makes the parser throw: every case is an outcome.
/// </summary>
public class ConnectReplyTests
{
    // Captured from ServerConnection.BuildConnectedResponse (its StringBuilder version, before the move to Protocol) in
    // an in-process server: a dual-stack tenant (pool6 fd77::/64, two DNS servers, routes 198.18.0.0/16, 10.20.30.0/24 and
    // fd00:20::/48, DPD 45, keepalive 25, MTU 1400) and a plain IPv4 tenant, each with no extensions.
    private const string Golden_dual =
        "HTTP/1.1 200 CONNECTED\r\n" +
        "X-CSTP-Version: 1\r\n" +
        "X-CSTP-Server-Name: isotun\r\n" +
        "X-CSTP-Address: 10.77.0.2\r\n" +
        "X-CSTP-Netmask: 255.255.255.0\r\n" +
        "X-CSTP-Address-IP6: fd77::2/64\r\n" +
        "X-CSTP-Split-Include-IP6: fd77::/64\r\n" +
        "X-CSTP-DNS: 10.77.0.1\r\n" +
        "X-CSTP-DNS: fd77::1\r\n" +
        "X-CSTP-Split-Include: 198.18.0.0/255.255.0.0\r\n" +
        "X-CSTP-Split-Include: 10.20.30.0/255.255.255.0\r\n" +
        "X-CSTP-Split-Include-IP6: fd00:20::/48\r\n" +
        "X-CSTP-Tunnel-All-DNS: false\r\n" +
        "X-CSTP-DPD: 45\r\n" +
        "X-CSTP-Keepalive: 25\r\n" +
        "X-CSTP-Idle-Timeout: none\r\n" +
        "X-CSTP-Rekey-Method: none\r\n" +
        "X-CSTP-Session-Timeout: none\r\n" +
        "X-CSTP-Disconnected-Timeout: none\r\n" +
        "X-CSTP-Keep: true\r\n" +
        "X-CSTP-TCP-Keepalive: true\r\n" +
        "X-CSTP-License: accept\r\n" +
        "X-CSTP-Base-MTU: 1500\r\n" +
        "X-CSTP-MTU: 1400\r\n" +
        "\r\n";

    private const string Golden_v4 =
        "HTTP/1.1 200 CONNECTED\r\n" +
        "X-CSTP-Version: 1\r\n" +
        "X-CSTP-Server-Name: isotun\r\n" +
        "X-CSTP-Address: 10.77.1.2\r\n" +
        "X-CSTP-Netmask: 255.255.255.0\r\n" +
        "X-CSTP-Tunnel-All-DNS: false\r\n" +
        "X-CSTP-DPD: 30\r\n" +
        "X-CSTP-Keepalive: 20\r\n" +
        "X-CSTP-Idle-Timeout: none\r\n" +
        "X-CSTP-Rekey-Method: none\r\n" +
        "X-CSTP-Session-Timeout: none\r\n" +
        "X-CSTP-Disconnected-Timeout: none\r\n" +
        "X-CSTP-Keep: true\r\n" +
        "X-CSTP-TCP-Keepalive: true\r\n" +
        "X-CSTP-License: accept\r\n" +
        "X-CSTP-Base-MTU: 1500\r\n" +
        "X-CSTP-MTU: 1400\r\n" +
        "\r\n";

    // The other captures (MTU 9000 as queue 3 of 4; MTU 1280 with batch; every extension) differ from those two only in these lines.
    private static readonly string Golden_queue3 = Golden_dual
        .Replace("X-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1400\r\n",
            "X-CSTP-Base-MTU: 9000\r\nX-CSTP-MTU: 9000\r\nX-Isotun-Extensions: batch, queues\r\nX-Isotun-Queues: 4\r\nX-Isotun-Queue: 3\r\n");

    private static readonly string Golden_batch = Golden_dual
        .Replace("X-CSTP-MTU: 1400\r\n", "X-CSTP-MTU: 1280\r\nX-Isotun-Extensions: batch\r\n");

    private static readonly string Golden_v4ext = Golden_v4
        .Replace("X-CSTP-MTU: 1400\r\n", "X-CSTP-MTU: 1400\r\nX-Isotun-Extensions: batch, gso, uso, queues\r\nX-Isotun-Queues: 4\r\n");

    private static readonly IpNetwork[] Routes = [Net("198.18.0.0/16"), Net("10.20.30.0/24"), Net("fd00:20::/48")];

    /// <summary>The reply the server builds for a dual-stack tenant with DNS and routes (the golden vectors' first tenant).</summary>
    private static ConnectReply DualStack(int mtu = 1400) => new()
    {
        ServerName = "isotun",
        Address = IPAddress.Parse("10.77.0.2"),
        Netmask = IPAddress.Parse("255.255.255.0"),
        Address6 = IPAddress.Parse("fd77::2"),
        Network6 = Net("fd77::/64"),
        Dns = [IPAddress.Parse("10.77.0.1"), IPAddress.Parse("fd77::1")],
        SplitInclude = Routes,
        Dpd = 45,
        Keepalive = 25,
        BaseMtu = Math.Max(1500, mtu),
        Mtu = mtu,
    };

    /// <summary>An IPv4-only tenant with the defaults (the golden vectors' second tenant).</summary>
    private static ConnectReply V4Only(int mtu = 1400) => new()
    {
        ServerName = "isotun",
        Address = IPAddress.Parse("10.77.1.2"),
        Netmask = IPAddress.Parse("255.255.255.0"),
        Dpd = 30,
        Keepalive = 20,
        BaseMtu = Math.Max(1500, mtu),
        Mtu = mtu,
    };

    public static TheoryData<string, ConnectReply, string> GoldenReplies() => new()
    {
        { "dual stack, DNS and routes, no extensions", DualStack(), Golden_dual },
        { "dual stack, queue 3 of 4 with batch, MTU 9000", DualStack(9000) with { Extensions = IsotunExtension.Batch | IsotunExtension.Queues, Queues = 4, Queue = 3 }, Golden_queue3 },
        { "IPv4 only, defaults", V4Only(), Golden_v4 },
        { "IPv4 only, every extension, 4 queues", V4Only() with { Extensions = IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Uso | IsotunExtension.Queues, Queues = 4 }, Golden_v4ext },
        { "dual stack, batch, MTU 1280", DualStack(1280) with { Extensions = IsotunExtension.Batch }, Golden_batch },
    };

    [Theory]
    [MemberData(nameof(GoldenReplies))]
    public void The_reply_is_byte_for_byte_what_the_server_sent_before_the_move(string name, ConnectReply reply, string golden)
    {
        Assert.True(Encoding.ASCII.GetBytes(golden).AsSpan().SequenceEqual(reply.Write()), name);
    }

    [Theory]
    [MemberData(nameof(GoldenReplies))]
    public void A_written_reply_reads_back(string name, ConnectReply written, string golden)
    {
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseResponse(Encoding.ASCII.GetBytes(golden), 16384, out var head, out _));
        Assert.Equal(ConnectReplyParseResult.Ok, ConnectReply.TryParse(head!.Headers, out var read, out var problem));
        Assert.Null(problem);
        Assert.Equal(written.Address, read!.Address);
        Assert.Equal(written.Netmask, read.Netmask);
        Assert.Equal(written.Address6, read.Address6);
        Assert.Equal(written.Network6, read.Network6);
        Assert.Equal(written.Dns, read.Dns);
        // The IPv6 network is routed too: it comes back among the routes, IPv4 ones first.
        var routes = written.SplitInclude.Where(r => r.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
            .Concat(written.Network6 is { } n6 ? [n6] : [])
            .Concat(written.SplitInclude.Where(r => r.Network.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork));
        Assert.Equal(routes, read.SplitInclude);
        Assert.Equal((written.Dpd, written.Keepalive, written.Mtu, written.BaseMtu), (read.Dpd, read.Keepalive, read.Mtu, read.BaseMtu));
        Assert.Equal((written.ServerName, written.IdleTimeout, written.SessionTimeout), (read.ServerName, read.IdleTimeout, read.SessionTimeout));
        Assert.Equal(written.Extensions, read.Extensions);
        if (written.Extensions.HasFlag(IsotunExtension.Queues)) Assert.Equal((written.Queues, written.Queue), (read.Queues, read.Queue));
        Assert.True(read.Write().Length > 0, name);
    }

    [Fact]
    public void Optional_fields_are_written_only_when_set()
    {
        var text = Encoding.ASCII.GetString(new ConnectReply
        {
            Address = IPAddress.Parse("10.1.0.2"),
            Mtu = 1400,
            DefaultDomain = "corp.example",
            IdleTimeout = 600,
            SessionTimeout = 3600,
        }.Write());
        Assert.DoesNotContain("X-CSTP-Server-Name", text);
        Assert.DoesNotContain("X-CSTP-Netmask", text);
        Assert.DoesNotContain("X-CSTP-Address-IP6", text);
        Assert.DoesNotContain("X-CSTP-Base-MTU", text);
        Assert.DoesNotContain("X-Isotun", text);
        Assert.Contains("\r\nX-CSTP-Default-Domain: corp.example\r\n", text);
        Assert.Contains("\r\nX-CSTP-Idle-Timeout: 600\r\n", text);
        Assert.Contains("\r\nX-CSTP-Session-Timeout: 3600\r\n", text);
        Assert.EndsWith("\r\nX-CSTP-MTU: 1400\r\n\r\n", text);
    }

    [Fact]
    public void The_server_never_writes_a_line_break_into_a_header()
    {
        var reply = new ConnectReply { Address = IPAddress.Parse("10.1.0.2"), Mtu = 1400, DefaultDomain = "corp\r\nX-Evil: 1" };
        Assert.Throws<ArgumentException>(() => reply.Write());
    }

    // --- reading: the mandatory MTU and address ---

    public static TheoryData<string, (string, string)[], ConnectReplyParseResult, string?> Outcomes() => new()
    {
        { "minimal", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.Ok, null },
        { "DTLS MTU alone", [("X-DTLS-MTU", "1300"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.Ok, null },
        { "MTU at the low bound", [("X-CSTP-MTU", "576"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.Ok, null },
        { "MTU at the high bound", [("X-CSTP-MTU", "65527"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.Ok, null },
        { "nothing", [], ConnectReplyParseResult.NoMtu, null },
        { "no MTU", [("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.NoMtu, null },
        { "empty MTU", [("X-CSTP-MTU", ""), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "" },
        { "MTU not a number", [("X-CSTP-MTU", "abc"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "abc" },
        { "MTU with a tail", [("X-CSTP-MTU", "1400abc"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "1400abc" },
        { "negative MTU", [("X-CSTP-MTU", "-1400"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "-1400" },
        { "MTU too small", [("X-CSTP-MTU", "575"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "575" },
        { "MTU too large", [("X-CSTP-MTU", "65528"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "65528" },
        { "MTU overflowing", [("X-CSTP-MTU", "99999999999999999999"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "99999999999999999999" },
        { "fractional MTU", [("X-CSTP-MTU", "1400.5"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "1400.5" },
        { "hex MTU", [("X-CSTP-MTU", "0x578"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "0x578" },
        { "a bad CSTP MTU is not saved by a DTLS one", [("X-CSTP-MTU", "1"), ("X-DTLS-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, "1" },
        { "the MTU is checked before the address", [("X-CSTP-MTU", "x"), ("X-CSTP-Address", "nonsense")], ConnectReplyParseResult.BadMtu, "x" },
        { "no address", [("X-CSTP-MTU", "1400")], ConnectReplyParseResult.NoAddress, null },
        { "only an IPv6 address", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address-IP6", "fd00::2/64")], ConnectReplyParseResult.NoAddress, null },
        { "empty address", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "")], ConnectReplyParseResult.BadAddress, "" },
        { "three octets", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0")], ConnectReplyParseResult.BadAddress, "10.10.0" },
        { "shorthand", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.1")], ConnectReplyParseResult.BadAddress, "10.1" },
        { "octet out of range", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.256")], ConnectReplyParseResult.BadAddress, "10.10.0.256" },
        { "IPv6 where IPv4 is expected", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "fd00:10::2")], ConnectReplyParseResult.BadAddress, "fd00:10::2" },
        { "IPv4-mapped IPv6", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "::ffff:10.10.0.2")], ConnectReplyParseResult.BadAddress, "::ffff:10.10.0.2" },
        { "a prefix", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2/24")], ConnectReplyParseResult.BadAddress, "10.10.0.2/24" },
        // Not a host's own unicast address: on the client's TUN it would shadow the host's own, or be no address at all.
        { "unspecified", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "0.0.0.0")], ConnectReplyParseResult.BadAddress, "0.0.0.0" },
        { "in 0.0.0.0/8", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "0.1.2.3")], ConnectReplyParseResult.BadAddress, "0.1.2.3" },
        { "loopback", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "127.0.0.53")], ConnectReplyParseResult.BadAddress, "127.0.0.53" },
        { "link-local", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "169.254.1.1")], ConnectReplyParseResult.BadAddress, "169.254.1.1" },
        { "multicast", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "224.0.0.1")], ConnectReplyParseResult.BadAddress, "224.0.0.1" },
        { "reserved", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "240.0.0.1")], ConnectReplyParseResult.BadAddress, "240.0.0.1" },
        { "broadcast", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "255.255.255.255")], ConnectReplyParseResult.BadAddress, "255.255.255.255" },
        { "a name", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "vpn.example.com")], ConnectReplyParseResult.BadAddress, "vpn.example.com" },
        { "a percent sign", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.0.0.1%1")], ConnectReplyParseResult.BadAddress, "10.0.0.1%1" },
        { "a control character is not quoted as it is", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.0.0.1\u001b[2J")], ConnectReplyParseResult.BadAddress, "10.0.0.1?[2J" },
        { "overlong MTU is quoted in part", [("X-CSTP-MTU", new string('9', 5000)), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadMtu, new string('9', 40) + "…" },
        { "overlong address is quoted in part", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", new string('x', 5000))], ConnectReplyParseResult.BadAddress, new string('x', 40) + "…" },
        // Duplicates: the first MTU and the first address count, as they always have for isotun connect.
        { "duplicated MTU", [("X-CSTP-MTU", "1400"), ("X-CSTP-MTU", "nonsense"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.Ok, null },
        { "duplicated address", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"), ("X-CSTP-Address", "fd00::1")], ConnectReplyParseResult.Ok, null },
        { "duplicated address, the first bad", [("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "bad"), ("X-CSTP-Address", "10.10.0.2")], ConnectReplyParseResult.BadAddress, "bad" },
    };

    [Theory]
    [MemberData(nameof(Outcomes))]
    public void Each_reply_has_an_outcome(string name, (string, string)[] headers, ConnectReplyParseResult expected, string? problem)
    {
        var result = ConnectReply.TryParse(Headers(headers), out var reply, out var quoted);
        Assert.True(expected == result, $"{name}: {result}");
        Assert.Equal(problem, quoted);
        Assert.Equal(expected == ConnectReplyParseResult.Ok, reply is not null);
    }

    [Fact]
    public void Duplicates_keep_the_first_MTU_and_address()
    {
        Assert.Equal(ConnectReplyParseResult.Ok, ConnectReply.TryParse(Headers(
            ("X-CSTP-MTU", "1400"), ("X-CSTP-MTU", "1300"), ("X-CSTP-Address", "10.10.0.2"), ("X-CSTP-Address", "10.10.0.3")), out var reply, out _));
        Assert.Equal((1400, IPAddress.Parse("10.10.0.2")), (reply!.Mtu, reply.Address));
    }

    // --- reading: optional headers are skipped when unusable ---

    [Fact]
    public void A_minimal_reply_gets_the_defaults()
    {
        var r = Parse(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"));
        Assert.Null(r.Netmask);
        Assert.Null(r.Address6);
        Assert.Null(r.Network6);
        Assert.Empty(r.SplitInclude);
        Assert.Empty(r.Dns);
        Assert.Equal((ConnectReply.DefaultDpd, ConnectReply.DefaultKeepalive), (r.Dpd, r.Keepalive));
        Assert.Equal((IsotunExtension.None, 1, 0), (r.Extensions, r.Queues, r.Queue));
        Assert.Null(r.IdleTimeout);
        Assert.Null(r.SessionTimeout);
        Assert.Null(r.BaseMtu);
    }

    public static TheoryData<string, (string, string)[]> HostileOptionals() => new()
    {
        { "netmask: IPv6", [("X-CSTP-Netmask", "ffff:ffff::")] },
        { "netmask: shorthand", [("X-CSTP-Netmask", "255.255")] },
        { "netmask: overlong", [("X-CSTP-Netmask", new string('2', 5000))] },
        { "DNS: not an address", [("X-CSTP-DNS", "nonsense"), ("X-CSTP-DNS", "10.0.0.1.")] },
        { "DNS: overlong", [("X-CSTP-DNS", new string('1', 5000))] },
        { "IPv6 scope ids", [("X-CSTP-DNS", "fe80::1%eth0"), ("X-CSTP-Address-IP6", "fe80::2%1/64"), ("X-CSTP-Split-Include-IP6", "fe80::%2/64")] },
        { "routes: prefix out of range", [("X-CSTP-Split-Include", "10.0.0.0/33"), ("X-CSTP-Split-Include-IP6", "fd00::/129"), ("X-CSTP-Split-Include", "10.0.0.0/-1")] },
        { "routes: masks that are not masks", [("X-CSTP-Split-Include", "10.0.0.0/255.0.255.0"), ("X-CSTP-Split-Include", "10.0.0.0/0.255.255.255"), ("X-CSTP-Split-Include-IP6", "fd00::/ffff::")] },
        { "routes: not routes", [("X-CSTP-Split-Include", "garbage"), ("X-CSTP-Split-Include", ""), ("X-CSTP-Split-Include", "/24"), ("X-CSTP-Split-Include", "10.0.0.0/8/8")] },
        { "routes: overlong", [("X-CSTP-Split-Include", new string('1', 5000) + "/8"), ("X-CSTP-Split-Include", "10.0.0.0/" + new string('0', 5000) + "8")] },
        { "IPv6 address: IPv4", [("X-CSTP-Address-IP6", "10.10.0.2/24")] },
        { "IPv6 address: garbage", [("X-CSTP-Address-IP6", "garbage"), ("X-CSTP-Address-IP6", "")] },
        { "timers: out of range", [("X-CSTP-DPD", "0"), ("X-CSTP-Keepalive", "86401"), ("X-CSTP-Idle-Timeout", "-5"), ("X-CSTP-Session-Timeout", "99999999999")] },
        { "timers: not numbers", [("X-CSTP-DPD", "soon"), ("X-CSTP-Keepalive", ""), ("X-CSTP-Idle-Timeout", "none"), ("X-CSTP-Session-Timeout", "none")] },
        { "extensions: unknown and overlong", [(IsotunExtensions.Header, "teleport, " + new string('x', 5000)), (IsotunExtensions.QueuesHeader, "999"), (IsotunExtensions.QueueHeader, "-1")] },
        { "texts: control characters and overlong", [("X-CSTP-Default-Domain", "a\u0007b"), ("X-CSTP-Server-Name", new string('s', 5000)), ("X-CSTP-Base-MTU", "-1")] },
    };

    [Theory]
    [MemberData(nameof(HostileOptionals))]
    public void Unusable_optional_headers_are_skipped(string name, (string, string)[] extra)
    {
        var r = Parse([("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"), .. extra]);
        Assert.True(r.Netmask is null && r.Address6 is null && r.Network6 is null, name);
        Assert.True(r.SplitInclude.Count == 0 && r.Dns.Count == 0, name);
        Assert.True((r.Dpd, r.Keepalive, r.IdleTimeout, r.SessionTimeout) == (ConnectReply.DefaultDpd, ConnectReply.DefaultKeepalive, null, null), name);
        Assert.True((r.Extensions, r.Queues, r.Queue) == (IsotunExtension.None, 1, 0), name);
        Assert.True(r.DefaultDomain is null && r.ServerName is null && r.BaseMtu is null, name);
    }

    [Fact]
    public void Unusable_routes_are_skipped_and_the_rest_kept_IPv4_first()
    {
        var r = Parse(
            ("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"),
            ("X-CSTP-Split-Include-IP6", "fd00:20::/64"),
            ("X-CSTP-Split-Include", "10.20.0.0/255.0.255.0"),
            ("X-CSTP-Split-Include", "10.30.0.0/255.255.0.0"),
            ("X-CSTP-Split-Include", "garbage"),
            ("X-CSTP-Split-Include-IP6", "fd00:30::/999"));
        Assert.Equal(["10.30.0.0/16", "fd00:20::/64"], r.SplitInclude.Select(n => n.ToString()));
    }

    [Fact]
    public void At_most_three_DNS_servers_are_kept_and_the_last_usable_netmask_counts()
    {
        var r = Parse(
            ("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"),
            ("X-CSTP-Netmask", "255.255.0.0"), ("X-CSTP-Netmask", "255.255.255.0"), ("X-CSTP-Netmask", "ffff::"),
            ("X-CSTP-DNS", "nonsense"), ("X-CSTP-DNS", "10.0.0.1"), ("X-CSTP-DNS", "fd00::53"), ("X-CSTP-DNS", "10.0.0.3"), ("X-CSTP-DNS", "10.0.0.4"));
        Assert.Equal(IPAddress.Parse("255.255.255.0"), r.Netmask);
        Assert.Equal(["10.0.0.1", "fd00::53", "10.0.0.3"], r.Dns.Select(d => d.ToString()));
    }

    [Theory]
    [InlineData("fd00:10::2/64", "fd00:10::2", "fd00:10::/64")]
    [InlineData("fd00:10::2", "fd00:10::2", null)]
    [InlineData("fd00:10::2/129", "fd00:10::2", null)]
    [InlineData("fd00:10::2/abc", "fd00:10::2", null)]
    [InlineData("10.10.0.2/24", null, null)]
    [InlineData("garbage", null, null)]
    [InlineData("", null, null)]
    [InlineData("::1/128", null, null)] // not a host's own unicast address: left out, as an unusable one is
    [InlineData("::/64", null, null)]
    [InlineData("fe80::2/64", null, null)]
    [InlineData("ff02::1/64", null, null)]
    public void The_IPv6_address_and_its_network_are_read_from_X_CSTP_Address_IP6(string header, string? address, string? network)
    {
        var r = Parse(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"), ("X-CSTP-Address-IP6", header));
        Assert.Equal(address is null ? null : IPAddress.Parse(address), r.Address6);
        Assert.Equal(network, r.Network6?.ToString());
    }

    [Fact]
    public void The_Isotun_extension_headers_are_read()
    {
        var r = Parse(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"),
            (IsotunExtensions.Header, "batch, gso, uso, queues"), (IsotunExtensions.QueuesHeader, "4"), (IsotunExtensions.QueueHeader, "3"));
        Assert.Equal((IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Uso | IsotunExtension.Queues, 4, 3), (r.Extensions, r.Queues, r.Queue));
    }

    [Fact]
    public void Random_hostile_replies_never_throw()
    {
        string[] names = ["X-CSTP-MTU", "X-DTLS-MTU", "X-CSTP-Address", "X-CSTP-Netmask", "X-CSTP-Address-IP6", "X-CSTP-DNS",
            "X-CSTP-Split-Include", "X-CSTP-Split-Include-IP6", "X-CSTP-DPD", "X-CSTP-Keepalive", "X-CSTP-Idle-Timeout",
            "X-CSTP-Session-Timeout", "X-CSTP-Base-MTU", "X-CSTP-Default-Domain", "X-CSTP-Server-Name",
            IsotunExtensions.Header, IsotunExtensions.QueuesHeader, IsotunExtensions.QueueHeader];
        string[] values = ["", "/", "//", "0", "-1", "1400", "65536", "10.0.0.1", "10.0.0.0/8", "10.0.0.0/255.0.0.0", "fd00::1",
            "fd00::/64", "fd00::1%eth0/64", "::/0", "0.0.0.0/0.0.0.0", "255.255.255.255", "1e3", "none", "\u0000", "é", "batch,queues",
            new string('9', 300), new string(':', 100), "10.0.0.1/" + new string('8', 50)];
        var rng = new Random(20261205);
        for (int i = 0; i < 5000; i++)
        {
            var h = new HttpHeaders();
            int n = rng.Next(0, 12);
            for (int j = 0; j < n; j++) h.Add(names[rng.Next(names.Length)], values[rng.Next(values.Length)]);
            var result = ConnectReply.TryParse(h, out var reply, out _);
            Assert.True(Enum.IsDefined(result));
            Assert.Equal(result == ConnectReplyParseResult.Ok, reply is not null);
        }
    }

    // --- split routes ---

    [Theory]
    // Dotted masks, as ocserv and Cisco send them.
    [InlineData("10.20.0.0/255.255.0.0", "10.20.0.0/16")]
    [InlineData("10.20.30.0/255.255.255.0", "10.20.30.0/24")]
    [InlineData("10.20.30.40/255.255.255.255", "10.20.30.40/32")]
    [InlineData("0.0.0.0/0.0.0.0", "0.0.0.0/0")]
    [InlineData("10.20.0.0/255.255.128.0", "10.20.0.0/17")]
    // Prefix lengths, as Isotun may send them.
    [InlineData("10.20.0.0/16", "10.20.0.0/16")]
    [InlineData("10.20.30.0/24", "10.20.30.0/24")]
    // Host bits are cleared: servers send them.
    [InlineData("10.20.30.40/255.255.0.0", "10.20.0.0/16")]
    [InlineData("10.20.30.40/16", "10.20.0.0/16")]
    // IPv6: a bare number is a prefix length, never the address 0.0.0.64.
    [InlineData("fd00:10::/64", "fd00:10::/64")]
    [InlineData("fd00:10::5/64", "fd00:10::/64")]
    [InlineData("fd00:10:0:0:1::5/80", "fd00:10:0:0:1::/80")]
    [InlineData("::/0", "::/0")]
    [InlineData("2001:db8::/32", "2001:db8::/32")]
    [InlineData("2001:db8::1/128", "2001:db8::1/128")]
    public void Split_include_routes_are_read_with_masks_and_prefix_lengths(string text, string expected)
    {
        Assert.True(ConnectReply.TryParseRoute(text, out var network), text);
        Assert.Equal(expected, network.ToString());
        Assert.True(IpNetwork.TryParse(expected, out var want));
        Assert.Equal(want, network);
    }

    [Fact]
    public void An_IPv6_prefix_of_64_is_not_read_as_the_IPv4_mask_0_0_0_64()
    {
        // The bug this pins: IPAddress.TryParse("64") succeeds (as 0.0.0.64), which made "fd00:10::/64" a /1.
        Assert.True(ConnectReply.TryParseRoute("fd00:10::/64", out var network));
        Assert.Equal(64, network.PrefixLength);
        Assert.Equal(IPAddress.Parse("fd00:10::"), network.Network);
        Assert.True(ConnectReply.TryParseRoute("10.0.0.0/8", out var v4));
        Assert.Equal(8, v4.PrefixLength);
    }

    [Theory]
    [InlineData("10.20.0.0")]
    [InlineData("10.20.0.0/")]
    [InlineData("/24")]
    [InlineData("10.20.0.0/33")]
    [InlineData("10.20.0.0/-1")]
    [InlineData("10.20.0.0/abc")]
    [InlineData("10.20.0.0/255.0.255.0")]      // not contiguous
    [InlineData("10.20.0.0/0.255.255.255")]    // inverted (a Cisco wildcard)
    [InlineData("10.20.0.0/255.255.0.0/8")]
    [InlineData("10.20/16")]                   // shorthand: IPAddress.TryParse would read 10.0.0.20
    [InlineData("10.20.0.0/255.255")]
    [InlineData("fd00::/129")]
    [InlineData("fd00::/ffff::")]
    [InlineData("not-an-address/24")]
    [InlineData("")]
    [InlineData(null)]
    public void Unusable_routes_are_refused(string? text)
    {
        Assert.False(ConnectReply.TryParseRoute(text, out _), text);
    }

    /// <summary>ocserv's no-route: the excluded networks are read apart from the included ones, unusable ones skipped.</summary>
    [Fact]
    public void Split_exclude_routes_are_read_apart_from_the_included_ones()
    {
        var r = Parse(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"), ("X-CSTP-Split-Include", "10.0.0.0/255.0.0.0"),
            ("X-CSTP-Split-Exclude", "10.1.0.0/255.255.0.0"), ("X-CSTP-Split-Exclude", "junk"), ("X-CSTP-Split-Exclude-IP6", "fd00:1::/48"));
        Assert.Equal(["10.0.0.0/8"], r.SplitInclude.Select(n => n.ToString()));
        Assert.Equal(["10.1.0.0/16", "fd00:1::/48"], r.SplitExclude.Select(n => n.ToString()));
    }

    private static ConnectReply Parse(params (string Name, string Value)[] headers)
    {
        Assert.Equal(ConnectReplyParseResult.Ok, ConnectReply.TryParse(Headers(headers), out var reply, out _));
        return reply!;
    }

    private static HttpHeaders Headers(params (string Name, string Value)[] headers)
    {
        var h = new HttpHeaders();
        foreach (var (n, v) in headers) h.Add(n, v);
        return h;
    }

    private static IpNetwork Net(string text) => IpNetwork.TryParse(text, out var n) ? n : throw new ArgumentException(text);
}
