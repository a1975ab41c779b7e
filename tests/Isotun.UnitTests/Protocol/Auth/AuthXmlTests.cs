using System.Text;
using Isotun.Protocol.Auth;

namespace Isotun.UnitTests.Protocol.Auth;

public class AuthXmlTests
{
    // openconnect 9.01 init (reference 1.1).
    private const string OpenConnectInit = """
        <?xml version="1.0" encoding="UTF-8"?>
        <config-auth client="vpn" type="init" aggregate-auth-version="2">
         <version who="vpn">v9.01-3</version><device-id>linux-64</device-id>
         <capabilities><auth-method>single-sign-on-v2</auth-method><auth-method>single-sign-on-external-browser</auth-method></capabilities>
         <group-access>https://198.18.0.1/</group-access>
         <group-select>tenantA</group-select><client-cert-fail/></config-auth>
        """;

    // openconnect 9.01 auth-reply echoing an opaque block (reference 1.1).
    private const string OpenConnectReply = """
        <?xml version="1.0" encoding="UTF-8"?>
        <config-auth client="vpn" type="auth-reply" aggregate-auth-version="2"><version who="vpn">v9.01-3</version><device-id>linux-64</device-id><session-token/><session-id/><opaque is-for="sg"><tunnel-group>tenantA</tunnel-group><config-hash>1595829378234</config-hash></opaque><auth><username>alice</username><password>s3cr&amp;t &lt;x&gt;</password></auth>
         <group-select>tenantA</group-select></config-auth>
        """;

    // ocserv auth-request (reference 1.1).
    private const string OcservAuthRequest = """
        <?xml version="1.0" encoding="UTF-8"?>
        <config-auth client="vpn" type="auth-request"><version who="sg">0.1(1)</version>
        <auth id="main"><message>Please enter your username.</message>
        <form method="post" action="/auth">
         <input type="text" name="username" label="Username:" />
         <input type="password" name="password" label="Password:" />
         <select name="group_list" label="Group:"><option value="tenantA">Tenant A</option><option>tenantB</option></select>
        </form></auth></config-auth>
        """;

    private const string OcservComplete = """
        <?xml version="1.0" encoding="UTF-8"?>
        <config-auth client="vpn" type="complete"><version who="sg">0.1(1)</version>
        <auth id="success"><title>SSL VPN Service</title></auth></config-auth>
        """;

    [Fact]
    public void Parses_openconnect_init()
    {
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseClientMessage(Utf8(OpenConnectInit), out var message));
        Assert.NotNull(message);
        Assert.Equal("init", message.Type);
        Assert.Equal("v9.01-3", message.Version);
        Assert.Equal("https://198.18.0.1/", message.GroupAccess);
        Assert.Equal("tenantA", message.GroupSelect);
        Assert.True(message.ClientCertFail);
        Assert.Empty(message.Fields);
        Assert.Null(message.Username);
        Assert.Null(message.Opaque);
    }

    [Fact]
    public void Parses_openconnect_auth_reply()
    {
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseClientMessage(Utf8(OpenConnectReply), out var message));
        Assert.NotNull(message);
        Assert.Equal("auth-reply", message.Type);
        Assert.Equal("alice", message.Username);
        Assert.Equal("s3cr&t <x>", message.Password);
        Assert.Equal("tenantA", message.GroupSelect);
        Assert.False(message.ClientCertFail);
        Assert.Equal("<opaque is-for=\"sg\"><tunnel-group>tenantA</tunnel-group><config-hash>1595829378234</config-hash></opaque>", message.Opaque);
    }

    [Fact]
    public void Parses_ocserv_auth_request()
    {
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(OcservAuthRequest), out var message));
        Assert.NotNull(message);
        Assert.Equal("auth-request", message.Type);
        Assert.Equal("main", message.AuthId);
        var form = Assert.IsType<AuthForm>(message.Form);
        Assert.Equal("/auth", form.Action);
        Assert.Equal("Please enter your username.", form.Message);
        Assert.Null(form.Error);
        Assert.Equal(new[] { new AuthInput("text", "username", "Username:"), new AuthInput("password", "password", "Password:") }, form.Inputs);
        Assert.NotNull(form.Select);
        Assert.Equal("group_list", form.Select.Name);
        Assert.Equal("Group:", form.Select.Label);
        Assert.Equal(new[] { new AuthOption("tenantA", "Tenant A"), new AuthOption("tenantB", "tenantB") }, form.Select.Options);
        Assert.Null(message.SessionToken);
        Assert.False(message.ClientCertRequest);
    }

    [Fact]
    public void Parses_ocserv_complete()
    {
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(OcservComplete), out var message));
        Assert.Equal("complete", message!.Type);
        Assert.Equal("success", message.AuthId);
        Assert.Null(message.Form);
    }

    [Fact]
    public void Auth_request_round_trips()
    {
        var form = new AuthForm(
            "/auth?x=1&y=<2>",
            "Please enter \"your\" credentials & <stuff>",
            "Login failed",
            [new AuthInput("text", "username", "Username:"), new AuthInput("password", "password", "Password:"), new AuthInput("hidden", "state", "")],
            new AuthSelect("group_list", "Group:", [new AuthOption("tenantA", "tenantA"), new AuthOption("b&b", "B & B")]));
        const string opaque = "<opaque is-for=\"sg\"><ctx>abc</ctx></opaque>";

        string xml = AuthXml.BuildAuthRequest(form, opaque);

        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", xml);
        Assert.Contains("<config-auth client=\"vpn\" type=\"auth-request\" aggregate-auth-version=\"2\"><version who=\"sg\">isotun</version><auth id=\"main\">", xml);
        Assert.Contains("<form method=\"post\" action=", xml);
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(xml), out var parsed));
        Assert.Equal("auth-request", parsed!.Type);
        Assert.Equal("main", parsed.AuthId);
        Assert.Equal(opaque, parsed.Opaque);
        var back = parsed.Form!;
        Assert.Equal(form.Action, back.Action);
        Assert.Equal(form.Message, back.Message);
        Assert.Equal(form.Error, back.Error);
        Assert.Equal(form.Inputs, back.Inputs);
        Assert.Equal(form.Select!.Name, back.Select!.Name);
        Assert.Equal(form.Select.Label, back.Select.Label);
        Assert.Equal(form.Select.Options, back.Select.Options);
    }

    [Fact]
    public void Auth_request_without_message_or_select_round_trips()
    {
        var form = new AuthForm("/", null, null, [new AuthInput("password", "password", "Password:")], null);
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(AuthXml.BuildAuthRequest(form)), out var parsed));
        Assert.Null(parsed!.Form!.Message);
        Assert.Null(parsed.Form.Error);
        Assert.Null(parsed.Form.Select);
        Assert.Null(parsed.Opaque);
        Assert.Equal(form.Inputs, parsed.Form.Inputs);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("Welcome to <Tenant A> & co", null)]
    [InlineData(null, "tok-123")]
    [InlineData("Banner", "tok-456")]
    public void Complete_round_trips(string? banner, string? token)
    {
        string xml = AuthXml.BuildComplete(banner, token);
        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", xml);
        Assert.Contains("<auth id=\"success\"><title>SSL VPN Service</title>", xml);
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(xml), out var parsed));
        Assert.Equal("complete", parsed!.Type);
        Assert.Equal("success", parsed.AuthId);
        Assert.Equal(banner, parsed.Banner);
        Assert.Equal(token, parsed.SessionToken);
        Assert.Null(parsed.Form);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("tenantA")]
    public void Init_round_trips(string? group)
    {
        string xml = AuthXml.BuildInit("v9.01-3", "https://vpn.example/tenantA", group);
        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", xml);
        Assert.Contains("<config-auth client=\"vpn\" type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version><device-id>linux-64</device-id><group-access>https://vpn.example/tenantA</group-access>", xml);
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseClientMessage(Utf8(xml), out var parsed));
        Assert.Equal("init", parsed!.Type);
        Assert.Equal("v9.01-3", parsed.Version);
        Assert.Equal("https://vpn.example/tenantA", parsed.GroupAccess);
        Assert.Equal(group, parsed.GroupSelect);
    }

    [Fact]
    public void Reply_round_trips_with_echoed_opaque()
    {
        var server = AuthXml.BuildAuthRequest(new AuthForm("/auth", null, null, [], null), "<opaque is-for=\"sg\"><a>1</a><b x=\"&amp;\"/></opaque>");
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(server), out var request));

        var fields = new List<KeyValuePair<string, string>>
        {
            new("username", "alice"),
            new("password", "p<a>ss&\"word'\0\uD800"),
            new("bad name", "dropped"),
            new("", "dropped"),
            new("1st", "dropped"),
        };
        string xml = AuthXml.BuildReply("v9.01-3", fields, "tenantA", request!.Opaque);

        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", xml);
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseClientMessage(Utf8(xml), out var reply));
        Assert.Equal("auth-reply", reply!.Type);
        Assert.Equal("alice", reply.Username);
        Assert.Equal("p<a>ss&\"word'\uFFFD\uFFFD", reply.Password);
        Assert.Equal(2, reply.Fields.Count);
        Assert.Equal("tenantA", reply.GroupSelect);
        Assert.Equal(request.Opaque, reply.Opaque);
    }

    public static TheoryData<string> HostileDocuments() => new()
    {
        // Billion laughs.
        """
        <?xml version="1.0"?>
        <!DOCTYPE lolz [
         <!ENTITY lol "lol">
         <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
         <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
         <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
         <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
         <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
         <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
         <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
         <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
         <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
        ]>
        <config-auth client="vpn" type="init"><version who="vpn">&lol9;</version><auth><username>&lol9;</username></auth></config-auth>
        """,

        // External entity.
        """
        <?xml version="1.0"?>
        <!DOCTYPE config-auth [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
        <config-auth client="vpn" type="auth-reply"><auth><username>&xxe;</username></auth></config-auth>
        """,

        // Parameter entities pulling a remote DTD.
        """
        <?xml version="1.0"?>
        <!DOCTYPE config-auth [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote; <!ENTITY % file SYSTEM "file:///etc/hostname"> %file;]>
        <config-auth client="vpn" type="init"><version>x</version></config-auth>
        """,

        // External DTD subset.
        """<!DOCTYPE config-auth SYSTEM "file:///etc/passwd"><config-auth client="vpn" type="init"/>""",

        // DOCTYPE after a comment and whitespace; lower-case keyword.
        "\n <!-- hi --> <!DOCTYPE config-auth [<!ENTITY a \"b\">]><config-auth type=\"init\">&a;</config-auth>",
        "<!doctype config-auth><config-auth type=\"init\"/>",
    };

    [Theory]
    [MemberData(nameof(HostileDocuments))]
    public void Dtds_are_prohibited_and_nothing_resolves(string document)
    {
        Assert.Equal(AuthXmlResult.DtdProhibited, AuthXml.TryParseClientMessage(Utf8(document), out var client));
        Assert.Null(client);
        Assert.Equal(AuthXmlResult.DtdProhibited, AuthXml.TryParseServerMessage(Utf8(document), out var server));
        Assert.Null(server);
    }

    public static TheoryData<string, AuthXmlResult> BadDocuments() => new()
    {
        { "", AuthXmlResult.Empty },
        { " \r\n\t ", AuthXmlResult.Empty },
        { "\uFEFF", AuthXmlResult.Empty },
        { "<config-auth type=\"init\"><auth><username>&xxe;</username></auth></config-auth>", AuthXmlResult.Malformed },
        { "<config-auth type=\"init\">", AuthXmlResult.Malformed },
        { "<config-auth type=\"init\"></config-auth><second/>", AuthXmlResult.Malformed },
        { "<config-auth><auth/></config-auth>", AuthXmlResult.Malformed },
        { "not xml at all", AuthXmlResult.Malformed },
        { "<?xml version=\"1.0\"?>", AuthXmlResult.Malformed },
        { "<html><body>Login</body></html>", AuthXmlResult.NotConfigAuth },
        { "<?xml version=\"1.0\"?><config type=\"init\"/>", AuthXmlResult.NotConfigAuth },
        { "<config-auth type=\"init\"/>", AuthXmlResult.Ok },
        { "<?xml version=\"1.0\" encoding=\"UTF-16\"?><config-auth type=\"init\"/>", AuthXmlResult.Ok },
        { "<x:config-auth xmlns:x=\"urn:x\" type=\"init\"/>", AuthXmlResult.Ok },
        { "<config-auth type=\"init\"><?pi x?><!-- c --><version><![CDATA[v<1>]]></version></config-auth>", AuthXmlResult.Ok },
        { Nest(15), AuthXmlResult.Ok },
        { Nest(16), AuthXmlResult.Malformed },
        { Nest(5000), AuthXmlResult.Malformed },
        { "<config-auth type=\"init\">" + string.Concat(Enumerable.Repeat("<x/>", 2000)) + "</config-auth>", AuthXmlResult.Malformed },
        { "<config-auth type=\"init\">" + new string(' ', AuthXml.MaxBodyBytes - 50) + "</config-auth>", AuthXmlResult.Ok },
        { "<config-auth type=\"init\">" + new string(' ', AuthXml.MaxBodyBytes) + "</config-auth>", AuthXmlResult.TooLarge },
    };

    [Theory]
    [MemberData(nameof(BadDocuments))]
    public void Bad_and_edge_documents(string document, AuthXmlResult expected)
    {
        Assert.Equal(expected, AuthXml.TryParseClientMessage(Utf8(document), out var client));
        Assert.Equal(expected == AuthXmlResult.Ok, client is not null);
        Assert.Equal(expected, AuthXml.TryParseServerMessage(Utf8(document), out var server));
        Assert.Equal(expected == AuthXmlResult.Ok, server is not null);
    }

    [Fact]
    public void Client_field_count_is_bounded()
    {
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseClientMessage(Utf8(Fields(32)), out var message));
        Assert.Equal(32, message!.Fields.Count);
        Assert.Equal(AuthXmlResult.Malformed, AuthXml.TryParseClientMessage(Utf8(Fields(33)), out message));
        Assert.Null(message);
    }

    [Fact]
    public void Server_input_count_is_bounded()
    {
        string Form(int inputs) => "<config-auth type=\"auth-request\"><auth id=\"main\"><form action=\"/\">"
            + string.Concat(Enumerable.Range(0, inputs).Select(i => $"<input type=\"text\" name=\"n{i}\"/>")) + "</form></auth></config-auth>";
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(Form(32)), out var message));
        Assert.Equal(32, message!.Form!.Inputs.Count);
        Assert.Equal(AuthXmlResult.Malformed, AuthXml.TryParseServerMessage(Utf8(Form(33)), out _));
    }

    [Fact]
    public void Invalid_utf8_is_malformed()
    {
        byte[] body = [.. "<config-auth type=\"init\"><version>"u8, 0xc3, 0x28, .. "</version></config-auth>"u8];
        Assert.Equal(AuthXmlResult.Malformed, AuthXml.TryParseClientMessage(body, out _));
    }

    [Fact]
    public void Server_error_without_form_keeps_the_error()
    {
        var xml = "<config-auth client=\"vpn\" type=\"auth-request\"><auth id=\"main\"><error id=\"1\">Login failed</error></auth></config-auth>";
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(xml), out var message));
        Assert.Equal("Login failed", message!.Form!.Error);
        Assert.Empty(message.Form.Inputs);
    }

    [Fact]
    public void Client_cert_request_is_detected()
    {
        var xml = "<config-auth client=\"vpn\" type=\"auth-request\"><client-cert-request/></config-auth>";
        Assert.Equal(AuthXmlResult.Ok, AuthXml.TryParseServerMessage(Utf8(xml), out var message));
        Assert.True(message!.ClientCertRequest);
    }

    public static TheoryData<string, bool> ValidVectors() => new()
    {
        { OpenConnectInit, true },
        { OpenConnectReply, true },
        { AuthXml.BuildInit("v9.01-3", "https://vpn/", "tenantA"), true },
        { OcservAuthRequest, false },
        { OcservComplete, false },
        { AuthXml.BuildComplete("hi", "tok"), false },
    };

    [Theory]
    [MemberData(nameof(ValidVectors))]
    public void Resplit_bodies_parse_identically_and_partials_never_throw(string document, bool fromClient)
    {
        var whole = Utf8(document);
        var expected = Parse(whole, fromClient, out string? expectedShape);
        Assert.Equal(AuthXmlResult.Ok, expected);

        foreach (int seed in Resplitter.Seeds)
        {
            var body = new List<byte>();
            foreach (var chunk in Resplitter.Chunks(whole, new Random(seed), maxChunk: 40))
            {
                body.AddRange(chunk);
                var partial = Parse(body.ToArray(), fromClient, out _);
                Assert.True(partial is AuthXmlResult.Malformed or AuthXmlResult.Ok or AuthXmlResult.Empty, $"partial {body.Count}: {partial}");
            }

            Assert.Equal(expected, Parse(body.ToArray(), fromClient, out string? shape));
            Assert.Equal(expectedShape, shape);
        }
    }

    [Fact]
    public void Random_bytes_and_mutations_never_throw()
    {
        var random = new Random(1234);
        var seeds = new[] { OpenConnectInit, OpenConnectReply, OcservAuthRequest, OcservComplete }.Select(Utf8).ToArray();
        var noise = Encoding.ASCII.GetBytes("<>&;/=\"'!?[]-%#x");
        for (int i = 0; i < 3000; i++)
        {
            byte[] body;
            if (i % 3 == 0)
            {
                body = new byte[random.Next(0, 200)];
                random.NextBytes(body);
            }
            else
            {
                body = (byte[])seeds[random.Next(seeds.Length)].Clone();
                int edits = random.Next(1, 6);
                for (int e = 0; e < edits; e++)
                {
                    int at = random.Next(body.Length);
                    body[at] = random.Next(2) == 0 ? noise[random.Next(noise.Length)] : (byte)random.Next(256);
                }

                body = body[..random.Next(body.Length + 1)];
            }

            Assert.True(Enum.IsDefined(AuthXml.TryParseClientMessage(body, out _)));
            Assert.True(Enum.IsDefined(AuthXml.TryParseServerMessage(body, out _)));
        }
    }

    private static AuthXmlResult Parse(byte[] body, bool fromClient, out string? shape)
    {
        if (fromClient)
        {
            var r = AuthXml.TryParseClientMessage(body, out var m);
            shape = m is null ? null : $"{m.Type}|{m.Version}|{m.GroupAccess}|{m.GroupSelect}|{string.Join(",", m.Fields.Select(f => f.Key + "=" + f.Value))}|{m.Opaque}|{m.ClientCertFail}";
            return r;
        }

        var result = AuthXml.TryParseServerMessage(body, out var s);
        shape = s is null ? null : $"{s.Type}|{s.AuthId}|{s.Form?.Action}|{s.Form?.Message}|{s.Form?.Inputs.Count}|{s.Form?.Select?.Options.Count}|{s.SessionToken}|{s.Banner}|{s.Opaque}";
        return result;
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    // config-auth plus `levels` nested elements below it (root is depth 0).
    private static string Nest(int levels) =>
        "<config-auth type=\"init\">" + string.Concat(Enumerable.Repeat("<a>", levels)) + string.Concat(Enumerable.Repeat("</a>", levels)) + "</config-auth>";

    private static string Fields(int count) =>
        "<config-auth type=\"auth-reply\"><auth>" + string.Concat(Enumerable.Range(0, count).Select(i => $"<f{i}>v</f{i}>")) + "</auth></config-auth>";
}
