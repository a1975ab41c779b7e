using Isotun.Protocol.Http;

namespace Isotun.UnitTests.Protocol.Http;

/// <summary>The <c>webvpn</c> cookie's header syntax, as the server sets it and reads it back and the client sends it.</summary>
public class SessionCookieTests
{
    public static TheoryData<string, string[], string?> CookieHeaders() => new()
    {
        { "alone", ["webvpn=abc"], "abc" },
        { "among others", ["webvpncontext=ctx; webvpn=abc; other=1"], "abc" },
        { "padded", ["  webvpn=abc  ;x=1"], "abc" },
        { "in a second Cookie header", ["a=1", "webvpn=abc"], "abc" },
        { "the first counts", ["webvpn=first; webvpn=second"], "first" },
        { "value with '=' (base64 padding)", ["webvpn=YWJj=="], "YWJj==" },
        { "none", ["webvpncontext=ctx; other=1"], null },
        { "no Cookie header", [], null },
        { "empty value", ["webvpn="], null },
        { "no value", ["webvpn"], null },
        { "case matters", ["WebVPN=abc"], null },
        { "a longer name", ["webvpnx=abc"], null },
        { "garbage", [";;;=;"], null },
    };

    [Theory]
    [MemberData(nameof(CookieHeaders))]
    public void The_session_cookie_is_read_from_the_Cookie_headers(string name, string[] cookieHeaders, string? expected)
    {
        var h = new HttpHeaders();
        h.Add("Host", "vpn.example");
        foreach (var c in cookieHeaders) h.Add("Cookie", c);
        bool found = SessionCookie.TryGet(h, out var value);
        Assert.True(found == expected is not null, name);
        if (found) Assert.Equal(expected, value);
    }

    [Fact]
    public void The_server_sets_the_cookie_as_it_always_has()
    {
        Assert.Equal("webvpn=QUJD_-x; Secure; HttpOnly", SessionCookie.SetCookieValue("QUJD_-x"));
        Assert.Equal("webvpn=QUJD_-x", SessionCookie.CookieValue("QUJD_-x"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a;b")]
    [InlineData("a b")]
    [InlineData("a,b")]
    [InlineData("a\r\nSet-Cookie: x=1")]
    public void The_server_never_sets_a_cookie_that_could_break_the_header(string cookie)
    {
        Assert.Throws<ArgumentException>(() => SessionCookie.SetCookieValue(cookie));
    }

    [Theory]
    [InlineData("webvpn=abc; Secure; HttpOnly", true, "webvpn", "abc")]
    [InlineData(" webvpncontext = ctx ; path=/", true, "webvpncontext", "ctx")]
    [InlineData("webvpncontext=; expires=Thu, 01 Jan 1970 22:00:00 GMT", true, "webvpncontext", "")]
    [InlineData("webvpn", false, "", "")]
    [InlineData("=abc", false, "", "")]
    [InlineData("", false, "", "")]
    public void A_Set_Cookie_value_gives_its_name_and_value(string header, bool ok, string name, string value)
    {
        Assert.Equal(ok, SessionCookie.TryParseSetCookie(header, out var n, out var v));
        Assert.Equal((name, value), (n, v));
    }

    [Fact]
    public void A_set_cookie_reads_back()
    {
        var h = new HttpHeaders();
        Assert.True(SessionCookie.TryParseSetCookie(SessionCookie.SetCookieValue("tok3n"), out var name, out var value));
        h.Add("Cookie", $"{name}={value}");
        Assert.True(SessionCookie.TryGet(h, out var back));
        Assert.Equal("tok3n", back);
    }

    [Theory]
    [InlineData("dGhlLXNlYWxlZC1jb29raWU")] // ours: base64url
    [InlineData("Zm9v+YmFy/YmF6==")] // ocserv's: base64
    [InlineData("a$(b)`c'd")] // odd, but a cookie value: the shell quoting of --authenticate carries it
    public void A_cookie_value_from_a_server_is_kept(string value) => Assert.True(SessionCookie.IsValidValue(value));

    [Theory]
    [InlineData("")]
    [InlineData("a\nHOST=evil")]
    [InlineData("a\r\nX-Injected: 1")]
    [InlineData("with space")]
    [InlineData("a;b")]
    [InlineData("a,b")]
    [InlineData("a\"b")]
    [InlineData("a\\b")]
    [InlineData("caf\u00e9")]
    public void A_value_that_is_no_cookie_value_is_refused(string value) => Assert.False(SessionCookie.IsValidValue(value));

    [Fact]
    public void A_cookie_value_is_at_most_4096_characters()
    {
        Assert.True(SessionCookie.IsValidValue(new string('a', SessionCookie.MaxValueLength)));
        Assert.False(SessionCookie.IsValidValue(new string('a', SessionCookie.MaxValueLength + 1)));
    }
}
