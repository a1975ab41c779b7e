using System.Net;
using Isotun.Client;
using Isotun.Protocol.Http;

namespace Isotun.UnitTests.Core.Client;

/// <summary>
/// The client's reading of the server's CONNECT reply. A server is a peer like any other: a missing or bad
/// MTU or address is a protocol error with its exit code, and anything else unusable is skipped. The wire syntax
/// itself (every header, hostile values, routes) is tested in <c>Protocol/Cstp/ConnectReplyTests</c>.
/// </summary>
public class TunnelParametersTests
{
    [Fact]
    public void A_minimal_reply_gives_the_address_MTU_and_default_timers()
    {
        var p = TunnelParameters.Parse(Head(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2")));
        Assert.Equal(IPAddress.Parse("10.10.0.2"), p.Address);
        Assert.Equal(1400, p.Mtu);
        Assert.Null(p.Netmask);
        Assert.Null(p.Address6);
        Assert.Empty(p.SplitInclude);
        Assert.Empty(p.Dns);
        Assert.Equal((30, 20), (p.Dpd, p.Keepalive));
    }

    [Fact]
    public void A_full_isotun_reply_is_read_completely()
    {
        var p = TunnelParameters.Parse(Head(
            ("X-CSTP-Version", "1"),
            ("X-CSTP-Address", "10.10.0.7"),
            ("X-CSTP-Netmask", "255.255.255.0"),
            ("X-CSTP-Address-IP6", "fd00:10::7/64"),
            ("X-CSTP-Split-Include-IP6", "fd00:10::/64"),
            ("X-CSTP-DNS", "10.10.0.1"),
            ("X-CSTP-DNS", "fd00:10::1"),
            ("X-CSTP-Split-Include", "198.18.1.0/255.255.255.0"),
            ("X-CSTP-DPD", "60"),
            ("X-CSTP-Keepalive", "25"),
            ("X-CSTP-Base-MTU", "1500"),
            ("X-CSTP-MTU", "1380")));
        Assert.Equal(IPAddress.Parse("10.10.0.7"), p.Address);
        Assert.Equal(IPAddress.Parse("255.255.255.0"), p.Netmask);
        Assert.Equal(IPAddress.Parse("fd00:10::7"), p.Address6);
        Assert.Equal(1380, p.Mtu);
        Assert.Equal(["198.18.1.0/24", "fd00:10::/64"], p.SplitInclude.Select(r => r.ToString()).Order());
        Assert.Equal([IPAddress.Parse("10.10.0.1"), IPAddress.Parse("fd00:10::1")], p.Dns);
        Assert.Equal((60, 25), (p.Dpd, p.Keepalive));
    }

    [Fact]
    public void The_DTLS_MTU_is_used_when_no_CSTP_MTU_is_sent()
    {
        var p = TunnelParameters.Parse(Head(("X-DTLS-MTU", "1300"), ("X-CSTP-Address", "10.10.0.2")));
        Assert.Equal(1300, p.Mtu);
    }

    [Theory]
    [InlineData(null, "server sent no MTU")]
    [InlineData("", "unusable MTU")]
    [InlineData("abc", "unusable MTU")]
    [InlineData("1400abc", "unusable MTU")]
    [InlineData("-1400", "unusable MTU")]
    [InlineData("575", "unusable MTU")]
    [InlineData("65528", "unusable MTU")]
    [InlineData("99999999999999999999", "unusable MTU")]
    [InlineData("1400.5", "unusable MTU")]
    public void A_missing_or_bad_MTU_is_a_protocol_error(string? mtu, string message)
    {
        var headers = new List<(string, string)> { ("X-CSTP-Address", "10.10.0.2") };
        if (mtu is not null) headers.Add(("X-CSTP-MTU", mtu));
        var e = Assert.Throws<ClientException>(() => TunnelParameters.Parse(Head([.. headers])));
        Assert.Equal(ClientExitCode.ProtocolError, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("576")]
    [InlineData("9000")]
    [InlineData("65527")]
    public void MTUs_at_the_bounds_are_accepted(string mtu)
    {
        Assert.Equal(int.Parse(mtu), TunnelParameters.Parse(Head(("X-CSTP-MTU", mtu), ("X-CSTP-Address", "10.10.0.2"))).Mtu);
    }

    [Theory]
    [InlineData(null, "server sent no IP address")]
    [InlineData("", "unusable address")]
    [InlineData("10.10.0", "unusable address")]
    [InlineData("10.10.0.256", "unusable address")]
    [InlineData("fd00:10::2", "unusable address")]
    [InlineData("10.10.0.2/24", "unusable address")]
    [InlineData("vpn.example.com", "unusable address")]
    public void A_missing_or_bad_address_is_a_protocol_error(string? address, string message)
    {
        var headers = new List<(string, string)> { ("X-CSTP-MTU", "1400") };
        if (address is not null) headers.Add(("X-CSTP-Address", address));
        var e = Assert.Throws<ClientException>(() => TunnelParameters.Parse(Head([.. headers])));
        Assert.Equal(ClientExitCode.ProtocolError, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_hostile_value_is_quoted_only_in_part()
    {
        var garbage = new string('x', 5000);
        var e = Assert.Throws<ClientException>(() => TunnelParameters.Parse(Head(("X-CSTP-MTU", garbage), ("X-CSTP-Address", "10.10.0.2"))));
        Assert.True(e.Message.Length < 200, e.Message);
        var e2 = Assert.Throws<ClientException>(() => TunnelParameters.Parse(Head(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", garbage))));
        Assert.True(e2.Message.Length < 200, e2.Message);
    }

    [Fact]
    public void Unusable_routes_in_a_reply_are_skipped_and_the_rest_kept()
    {
        var p = TunnelParameters.Parse(Head(
            ("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"),
            ("X-CSTP-Split-Include", "10.20.0.0/255.0.255.0"),
            ("X-CSTP-Split-Include", "10.30.0.0/255.255.0.0"),
            ("X-CSTP-Split-Include", "garbage"),
            ("X-CSTP-Split-Include-IP6", "fd00:20::/64"),
            ("X-CSTP-Split-Include-IP6", "fd00:30::/999")));
        Assert.Equal(["10.30.0.0/16", "fd00:20::/64"], p.SplitInclude.Select(r => r.ToString()));
    }

    [Theory]
    [InlineData("fd00:10::2/64", "fd00:10::2")]
    [InlineData("fd00:10::2", "fd00:10::2")]
    [InlineData("10.10.0.2/24", null)]
    [InlineData("garbage", null)]
    [InlineData("", null)]
    public void The_IPv6_address_is_read_from_X_CSTP_Address_IP6(string header, string? expected)
    {
        var p = TunnelParameters.Parse(Head(("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"), ("X-CSTP-Address-IP6", header)));
        Assert.Equal(expected is null ? null : IPAddress.Parse(expected), p.Address6);
    }

    [Fact]
    public void Netmask_DNS_and_timers_skip_what_is_unusable()
    {
        var p = TunnelParameters.Parse(Head(
            ("X-CSTP-MTU", "1400"), ("X-CSTP-Address", "10.10.0.2"),
            ("X-CSTP-Netmask", "ffff:ffff::"),
            ("X-CSTP-DNS", "nonsense"), ("X-CSTP-DNS", "10.0.0.1"), ("X-CSTP-DNS", "10.0.0.2"), ("X-CSTP-DNS", "10.0.0.3"), ("X-CSTP-DNS", "10.0.0.4"),
            ("X-CSTP-DPD", "0"), ("X-CSTP-Keepalive", "86401")));
        Assert.Null(p.Netmask);
        Assert.Equal(["10.0.0.1", "10.0.0.2", "10.0.0.3"], p.Dns.Select(d => d.ToString()));
        Assert.Equal((30, 20), (p.Dpd, p.Keepalive));
    }

    [Fact]
    public void A_reply_read_from_the_wire_parses_the_same()
    {
        var text = "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Address: 10.10.0.9\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Split-Include-IP6: fd00:10::/64\r\n" +
                   "X-CSTP-Address-IP6: fd00:10::9/64\r\n\r\n";
        Assert.Equal(HttpParseResult.Ok, HttpHeadParser.TryParseResponse(System.Text.Encoding.ASCII.GetBytes(text), 16384, out var head, out _));
        var p = TunnelParameters.Parse(head!);
        Assert.Equal("fd00:10::/64", Assert.Single(p.SplitInclude).ToString());
        Assert.Equal(IPAddress.Parse("fd00:10::9"), p.Address6);
    }

    private static HttpResponseHead Head(params (string Name, string Value)[] headers)
    {
        var h = new HttpHeaders();
        foreach (var (n, v) in headers) h.Add(n, v);
        return new HttpResponseHead { Version = "HTTP/1.1", StatusCode = 200, Reason = "CONNECTED", Headers = h };
    }
}
