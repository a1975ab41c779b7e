using System.Net;
using System.Net.Sockets;
using System.Text;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;
using Isotun.Protocol.Cstp;

namespace Isotun.Integration.BadInput;

/// <summary>
/// The server against peers that misbehave, for real: a raw TLS client in the lab's client namespace logs in,
/// opens a tunnel, then breaks the rules. Each case must close or drop only what it must, be counted in the
/// server's metrics, never crash the server, and never touch another session: the lab's own client (the
/// witness) keeps its connection and address and answers pings after every case. Timing bounds are
/// generous on purpose: these tests assert what happens, not how fast.
/// </summary>
[Collection(BadInputCollection.Name)]
public sealed class BadInputTests(BadInputFixture fx)
{
    private static readonly TimeSpan CloseBound = TimeSpan.FromSeconds(90);
    private LabLayout L => fx.Layout;

    public static TheoryData<string, byte[]> MalformedFrames() => new()
    {
        { "wrong magic", [0x53, 0x54, 0x46, 0x02, 0x00, 0x00, 0x00, 0x00] },
        { "nonzero reserved byte", [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x00, 0x01] },
        { "unknown frame type", [0x53, 0x54, 0x46, 0x01, 0x00, 0x00, 0x06, 0x00] },
        // 20000 bytes: more than one TLS record can carry, which no peer without negotiated extensions sends.
        { "frame longer than allowed", [0x53, 0x54, 0x46, 0x01, 0x4e, 0x20, 0x00, 0x00, .. new byte[20000]] },
        { "an HTTP request inside the tunnel", Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: vpn\r\n\r\n") },
    };

    [SkippableTheory]
    [MemberData(nameof(MalformedFrames))]
    public async Task A_malformed_frame_closes_that_connection_only(string name, byte[] bad)
    {
        SkipUnlessRoot();
        var witness = Witness();
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"bad-frame\"");
        double malformed = fx.Metric("isotun_tunnel_drops_total", "reason=\"malformed\"", "tenant=\"demo\"");

        using var c = await TunnelAsync();
        await AssertEchoAsync(c, 1);
        await c.SendAsync(bad);
        Assert.True(await c.WaitForCloseAsync(CloseBound), $"{name}: the connection stayed open");

        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"bad-frame\"") >= closed + 1, $"{name}: close not counted as bad-frame");
        AssertEventually(() => fx.Metric("isotun_tunnel_drops_total", "reason=\"malformed\"", "tenant=\"demo\"") >= malformed + 1, $"{name}: drop not counted as malformed");
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task A_packet_larger_than_the_MTU_is_dropped_and_the_connection_stays()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double before = fx.Metric("isotun_tunnel_drops_total", "reason=\"oversize\"", "tenant=\"demo\"");

        using var c = await TunnelAsync();
        Assert.Equal(1400, c.Mtu);
        for (ushort i = 0; i < 3; i++)
            await c.SendFrameAsync(CstpPacketType.Data, RawCstpClient.EchoRequest(c.Address, L.TunnelGateway, 0x0515, (ushort)(100 + i), totalLength: 1500));
        Assert.Null(await c.ReceiveEchoReplyAsync(0x0515, 100, TimeSpan.FromSeconds(2)));

        AssertEventually(() => fx.Metric("isotun_tunnel_drops_total", "reason=\"oversize\"", "tenant=\"demo\"") >= before + 3, "oversize packets not counted");
        // The same connection still carries packets that fit, up to the MTU itself.
        await AssertEchoAsync(c, 2);
        await AssertEchoAsync(c, 3, totalLength: 1400);
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task A_packet_from_another_source_is_dropped_and_the_connection_stays()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double before = fx.Metric("isotun_tunnel_drops_total", "reason=\"spoofed-source\"", "tenant=\"demo\"");

        using var c = await TunnelAsync();
        Assert.NotEqual(fx.WitnessAddress, c.Address);
        // The witness's own address, an unleased pool address, and one from outside the pool.
        IPAddress[] forged = [fx.WitnessAddress, IPAddress.Parse("10.10.0.250"), IPAddress.Parse("198.18.19.2")];
        for (int i = 0; i < forged.Length; i++)
            await c.SendFrameAsync(CstpPacketType.Data, RawCstpClient.EchoRequest(forged[i], L.TunnelGateway, 0x5900, (ushort)i));

        AssertEventually(() => fx.Metric("isotun_tunnel_drops_total", "reason=\"spoofed-source\"", "tenant=\"demo\"") >= before + forged.Length, "spoofed packets not counted");
        await AssertEchoAsync(c, 4);
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task A_silent_peer_is_cut_off_by_the_handshake_timeout()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double timeouts = fx.Metric("isotun_tls_handshakes_total", "result=\"timeout\"");
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"handshake-timeout\"");

        using var c = RawCstpClient.ConnectTcp(L.ClientNs, fx.Server); // and then not a byte
        Assert.True(await c.WaitForCloseAsync(CloseBound), "the server kept a silent connection open");

        AssertEventually(() => fx.Metric("isotun_tls_handshakes_total", "result=\"timeout\"") >= timeouts + 1, "handshake timeout not counted");
        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"handshake-timeout\"") >= closed + 1, "close not counted as handshake-timeout");
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task A_peer_that_finishes_TLS_but_never_asks_is_cut_off_by_the_auth_timeout()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"auth-timeout\"");

        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        Assert.True(await c.WaitForCloseAsync(CloseBound), "the server kept an idle TLS connection open");

        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"auth-timeout\"") >= closed + 1, "close not counted as auth-timeout");
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task A_peer_that_keeps_asking_but_never_logs_in_is_cut_off_by_the_auth_timeout()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"auth-timeout\"");

        // A request every few seconds, each well within the auth timeout: the timeout runs from the connection
        // to a login, so the peer is still cut off (see docs/configuration.md, limits.auth-timeout).
        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var until = DateTime.UtcNow + CloseBound;
        bool cut = false;
        while (!cut && DateTime.UtcNow < until)
        {
            try
            {
                await c.SendAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: vpn\r\n\r\n"));
                cut = await c.ReadResponseAsync() is null;
            }
            catch (IOException)
            {
                cut = true;
            }
            if (!cut) await Task.Delay(TimeSpan.FromSeconds(3));
        }
        Assert.True(cut, "a peer asking for the login form forever was never cut off");

        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"auth-timeout\"") >= closed + 1, "close not counted as auth-timeout");
        AssertUnharmed(witness);
    }

    [SkippableFact]
    public async Task An_oversized_HTTP_head_is_refused_with_431_and_closed()
    {
        SkipUnlessRoot();
        var witness = Witness();
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\"");

        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var pad = string.Concat(Enumerable.Repeat("X-Pad: " + new string('a', 200) + "\r\n", 100)); // 20 KiB, no end
        await c.SendAsync(Encoding.ASCII.GetBytes("POST / HTTP/1.1\r\nHost: vpn\r\n" + pad));
        var response = await c.ReadResponseAsync();
        Assert.NotNull(response);
        Assert.Equal(431, response.Value.Head.StatusCode);
        Assert.True(await c.WaitForCloseAsync(CloseBound), "connection left open after 431");

        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\"") >= closed + 1, "close not counted as bad-request");
        AssertUnharmed(witness);
    }

    [SkippableTheory]
    [InlineData("65537", 413)]                 // one byte over the 64 KiB auth body limit
    [InlineData("1073741824", 413)]
    [InlineData("99999999999999", 400)]        // not a length this protocol can mean
    public async Task An_oversized_auth_body_is_refused_and_closed(string length, int status)
    {
        SkipUnlessRoot();
        var witness = Witness();
        double closed = fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\"");

        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        await c.SendAsync(Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nHost: vpn\r\nContent-Type: application/xml\r\nContent-Length: {length}\r\n\r\n<config-auth"));
        var response = await c.ReadResponseAsync();
        Assert.NotNull(response);
        Assert.Equal(status, response.Value.Head.StatusCode);
        Assert.True(await c.WaitForCloseAsync(CloseBound), $"connection left open after {status}");

        AssertEventually(() => fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\"") >= closed + 1, "close not counted as bad-request");
        AssertUnharmed(witness);
    }

    public static TheoryData<string, string> HostileXml() => new()
    {
        { "external entity over HTTP", """<?xml version="1.0"?><!DOCTYPE config-auth [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]><config-auth client="vpn" type="auth-reply"><auth><username>&x;</username><password>p</password></auth></config-auth>""" },
        { "external entity from a file", """<?xml version="1.0"?><!DOCTYPE config-auth [<!ENTITY x SYSTEM "file:///etc/passwd">]><config-auth client="vpn" type="auth-reply"><auth><username>&x;</username><password>p</password></auth></config-auth>""" },
        { "parameter entity", """<?xml version="1.0"?><!DOCTYPE config-auth [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p"> %p;]><config-auth client="vpn" type="init"/>""" },
        { "external DTD", """<?xml version="1.0"?><!DOCTYPE config-auth SYSTEM "http://127.0.0.1:{port}/dtd"><config-auth client="vpn" type="init"/>""" },
        { "billion laughs", """<?xml version="1.0"?><!DOCTYPE config-auth [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]><config-auth client="vpn" type="auth-reply"><auth><username>&h;</username><password>p</password></auth></config-auth>""" },
    };

    [SkippableTheory]
    [MemberData(nameof(HostileXml))]
    public async Task Hostile_XML_is_refused_with_400_and_nothing_is_resolved(string name, string xmlTemplate)
    {
        SkipUnlessRoot();
        var witness = Witness();
        double before = fx.Metric("isotun_auth_attempts_total", "result=\"bad-request\"");

        // Anything the server tried to fetch would land here, in its own namespace, on loopback.
        using var trap = NetworkNamespace.Run(L.ServerNs, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            s.Listen(8);
            return s;
        });
        var xml = xmlTemplate.Replace("{port}", ((IPEndPoint)trap.LocalEndPoint!).Port.ToString());

        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var (head, body) = await c.RequestAsync("POST", "/", [("X-Aggregate-Auth", "1"), ("Content-Type", "application/xml")], Encoding.UTF8.GetBytes(xml));
        Assert.True(head.StatusCode == 400, $"{name}: HTTP {head.StatusCode}");
        Assert.DoesNotContain("root:", Encoding.UTF8.GetString(body));
        Assert.False(trap.Poll(TimeSpan.FromSeconds(1), SelectMode.SelectRead), $"{name}: the server fetched what the XML named");
        // "Connection: close" in the reply, and the server does close: no second try on this connection.
        Assert.True(await c.WaitForCloseAsync(RawCstpClient.Guard), $"{name}: the connection stayed open after the 400");

        AssertEventually(() => fx.Metric("isotun_auth_attempts_total", "result=\"bad-request\"") >= before + 1, $"{name}: not counted as bad-request");
        AssertUnharmed(witness);
    }

    [SkippableTheory]
    [InlineData("/", "nosuch")]
    [InlineData("/nosuch", null)]
    [InlineData("/", "demo\" injected=\"1")]
    public async Task An_unknown_group_is_refused_without_listing_any_group(string target, string? group)
    {
        SkipUnlessRoot();
        var witness = Witness();
        double before = fx.Metric("isotun_auth_attempts_total", "result=\"unknown-tenant\"");

        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var xml = Protocol.Auth.AuthXml.BuildReply("v9.01-raw", [new("username", LabLayout.User), new("password", fx.Password)], group, null);
        var (head, body) = await c.RequestAsync("POST", target, [("X-Aggregate-Auth", "1")], Encoding.UTF8.GetBytes(xml));
        var text = Encoding.UTF8.GetString(body);
        Assert.True(head.StatusCode == 401, $"HTTP {head.StatusCode}: {text}");
        Assert.Contains("unknown group", text);
        Assert.DoesNotContain(LabLayout.Tenant, text);
        Assert.DoesNotContain("group_list", text);
        Assert.DoesNotContain("Set-Cookie", string.Join("\n", head.Headers.Select(h => h.Key)));

        AssertEventually(() => fx.Metric("isotun_auth_attempts_total", "result=\"unknown-tenant\"") >= before + 1, "refusal not counted");
        AssertUnharmed(witness);
    }

    // ---- Helpers --------------------------------------------------------------------------------------

    private static void SkipUnlessRoot() => Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);

    /// <summary>A fresh session of the lab user with its own tunnel (a second session: its own address).</summary>
    private async Task<RawCstpClient> TunnelAsync()
    {
        var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        try
        {
            var cookie = await c.LoginAsync(LabLayout.User, fx.Password, LabLayout.Tenant);
            await c.ConnectTunnelAsync(cookie);
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>A ping to the tenant gateway through this raw tunnel gets its reply on this same connection.</summary>
    private async Task AssertEchoAsync(RawCstpClient c, ushort sequence, int totalLength = 84)
    {
        const ushort id = 0x1b1b;
        // A few tries: the first packet of a fresh tunnel may race the server attaching the route back.
        for (int attempt = 0; attempt < 5; attempt++)
        {
            await c.SendFrameAsync(CstpPacketType.Data, RawCstpClient.EchoRequest(c.Address, L.TunnelGateway, id, sequence, totalLength));
            if (await c.ReceiveEchoReplyAsync(id, sequence, TimeSpan.FromSeconds(5)) is not null) return;
        }
        Assert.Fail($"no echo reply through the raw tunnel (address {c.Address}, {totalLength} bytes)");
    }

    private (int Losses, IPAddress Address) Witness() => (fx.WitnessLosses(), fx.WitnessAddress);

    /// <summary>The server still runs, and the witness kept its connection and address and still passes traffic.</summary>
    private void AssertUnharmed((int Losses, IPAddress Address) before)
    {
        Assert.True(LabProcess.IsAlive(fx.ServerPid), "the server died:\n" + LabProcess.Tail(L, "server"));
        TunnelTests.AssertPing(L.ClientNs, L.ServiceIp);
        TunnelTests.AssertPing(L.ServiceNs, before.Address);
        Assert.Equal(before.Address, fx.Lab!.ClientAddress());
        Assert.True(fx.WitnessLosses() == before.Losses, "the witness lost its connection:\n" + LabProcess.Tail(L, "client"));
    }

    private static void AssertEventually(Func<bool> condition, string message) =>
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), condition), message);
}
