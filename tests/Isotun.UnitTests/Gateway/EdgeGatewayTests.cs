using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Gateway.Configuration;
using Isotun.Pki;
using Isotun.Protocol.Proxy;
using Isotun.UnitTests.Pki;
using Isotun.UnitTests.Protocol.Tls;

namespace Isotun.UnitTests.Gateway;

/// <summary>The whole gateway in one process over loopback: routing, replay, PROXY v2, termination, bad input, limits, reload.</summary>
public sealed class EdgeGatewayTests
{
    private static string Yaml(string routes, string extra = "", string limits = "") => $"""
        listen: 127.0.0.1:{LoopbackTcp.FreePort()}
        admin:
          listen: off
        routes:
        {routes}
        {extra}
        limits:
          preread-timeout: 1
          handshake-timeout: 3
          connect-timeout: 2
          per-ip-connections: 1000
          per-ip-rate: 10000
          per-ip-burst: 10000
        {limits}
        """;

    private static string Pass(string sni, IPEndPoint backend, bool proxy = false) => $"""
          - sni: "{sni}"
            passthrough:
              backend: {backend}
              proxy-protocol: {(proxy ? "true" : "false")}
        """;

    private static readonly string NoBan = "  ban-after: 0";

    [Fact]
    public async Task Passthrough_replays_the_hello_untouched_and_relays_both_ways()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: NoBan));

        var sent = TlsVectors.OpenSslWithSni.Concat(new byte[] { 0x17, 0x03, 0x03, 0x00, 0x02, 0xAB, 0xCD }).ToArray();
        var reply = h.SendAndDrain(sent);

        Assert.Equal("backend-says-hi"u8.ToArray(), reply);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => backend.Accepted == 1 && backend.Bytes(0).Length == sent.Length));
        Assert.Equal(sent, backend.Bytes(0));
        Assert.Equal(1, h.Metrics.Total("clienthello", "routed"));
        Assert.Equal(1, h.Metrics.Total("forwarded", "vpn.acme.example"));
    }

    /// <summary>
    /// A route of one backend is not probed: a connect that fails marks it down, and the next that works marks it up
    /// again (it stayed down, in isotun_gateway_backend_up, until a reload).
    /// </summary>
    [Fact]
    public async Task A_single_backend_marked_down_by_a_failed_connect_is_up_again_after_one_that_works()
    {
        var port = LoopbackTcp.FreePort();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port)), limits: NoBan));
        bool Up() => h.Metrics.BackendStates!().Single().Item3;

        Assert.Null(h.SendAndDrain(TlsVectors.OpenSslWithSni)); // nothing listens: closed
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => !Up()), "the failed connect did not mark the backend down");
        using var backend = new FakeBackend(port: port);
        Assert.Equal("backend-says-hi"u8.ToArray(), h.SendAndDrain(TlsVectors.OpenSslWithSni));
        Assert.True(Up(), "the connect that worked did not mark the backend up");
    }

    [Fact]
    public async Task A_relay_silent_for_the_idle_timeout_is_closed_and_counted()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: NoBan + "\n  idle-timeout: 60"), clock);

        using var client = h.Connect();
        client.Send(TlsVectors.OpenSslWithSni);
        var reply = new byte[64];
        Assert.True(client.Receive(reply) > 0, "the relay did not come up"); // the backend's answer: bytes moved
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.False(client.Poll(TimeSpan.FromMilliseconds(500), SelectMode.SelectRead), "closed before the idle timeout");

        clock.Advance(TimeSpan.FromSeconds(2));
        // The gateway closes the client's side: the read ends (0 bytes or a reset), well within the socket's timeout.
        int n;
        try { n = client.Receive(reply); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { n = 0; }
        Assert.Equal(0, n);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("relays.closed", "idle") == 1));
    }

    [Fact]
    public async Task Passthrough_with_proxy_protocol_sends_the_client_address_and_sni_first()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint, proxy: true), limits: NoBan));

        using var s = h.Connect();
        s.Send(TlsVectors.OpenSslWithSni);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => backend.Accepted == 1 && backend.Bytes(0).Length > TlsVectors.OpenSslWithSni.Length));
        var got = backend.Bytes(0);
        Assert.Equal(ProxyParseResult.Ok, ProxyV2Parser.TryParse(got, 4096, out var header, out int consumed));
        Assert.Equal(ProxyCommand.Proxy, header!.Command);
        Assert.Equal(s.LocalEndPoint, header.Source);
        Assert.Equal(h.Endpoint, header.Destination);
        Assert.Equal("vpn.acme.example", header.Authority);
        Assert.Null(header.Ssl);
        Assert.Equal(TlsVectors.OpenSslWithSni, got[consumed..]);
    }

    [Fact]
    public async Task Wildcards_and_the_default_route_pick_the_right_backend()
    {
        using var exact = new FakeBackend("exact"u8.ToArray());
        using var wild = new FakeBackend("wild"u8.ToArray());
        using var fallback = new FakeBackend("default"u8.ToArray());
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.globex.example", exact.Endpoint) + "\n" + Pass("*.globex.example", wild.Endpoint),
            extra: $"""
            default:
              passthrough:
                backend: {fallback.Endpoint}
            no-sni: default
            """, limits: NoBan));

        string Ask(byte[] hello) => System.Text.Encoding.ASCII.GetString(h.SendAndDrain(hello) ?? []);
        Assert.Equal("exact", Ask(TlsVectors.Record(TlsVectors.Hello([TlsVectors.Sni("VPN.globex.example")]))));
        Assert.Equal("wild", Ask(TlsVectors.Record(TlsVectors.Hello([TlsVectors.Sni("a.b.globex.example")]))));
        Assert.Equal("default", Ask(TlsVectors.Record(TlsVectors.Hello([TlsVectors.Sni("globex.example")]))));
        Assert.Equal("default", Ask(TlsVectors.OpenSslWithoutSni));
        Assert.Equal(1, h.Metrics.Total("clienthello", "no-sni"));
    }

    public static TheoryData<string, byte[], bool, string> BadInput() => new()
    {
        { "http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), true, "not-tls" },
        { "garbage", [0x00, 0xFF, 0x13, 0x37], true, "not-tls" },
        { "malformed hello", TlsVectors.Record(TlsVectors.Hello([TlsVectors.SupportedVersions, TlsVectors.SupportedVersions])), true, "malformed" },
        { "declared 16 MiB hello", [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xFF, 0xFF, 0xFF], true, "too-large" },
        { "truncated hello, then close", TlsVectors.OpenSslWithSni[..100], true, "closed-early" },
        { "no SNI, rejected", TlsVectors.OpenSslWithoutSni, true, "no-sni" },
        { "unknown SNI, no default", TlsVectors.Record(TlsVectors.Hello([TlsVectors.Sni("other.example")])), true, "no-route" },
        { "truncated hello, stalls", TlsVectors.OpenSslWithSni[..100], false, "timeout" },
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public async Task Bad_input_is_closed_counted_and_never_reaches_a_backend(string name, byte[] data, bool halfClose, string outcome)
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: NoBan));

        var reply = h.SendAndDrain(data, halfClose);

        Assert.True(reply is null || reply.Length == 0, $"{name}: got {reply?.Length} bytes back");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("clienthello", outcome) == 1), $"{name}: not counted as {outcome}");
        Thread.Sleep(100);
        Assert.Equal(0, backend.Accepted);
    }

    [Fact]
    public async Task An_oversized_stream_of_records_is_cut_at_64_KiB()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: NoBan));

        var hello = new byte[4 + 60_000];
        hello[0] = 1;
        hello[2] = (byte)(60_000 >> 8);
        hello[3] = (byte)(60_000 & 0xFF);
        var records = TlsVectors.Reframe(hello, new Random(5), maxRecord: 8); // far over 64 KiB once framed
        using var s = h.Connect();
        try
        {
            for (int p = 0; p < records.Length; p += 8192) s.Send(records.AsSpan(p, Math.Min(8192, records.Length - p)));
        }
        catch (SocketException)
        {
            // The gateway may reset while we still send: that is the point.
        }

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("clienthello", "too-large") == 1));
        Assert.Equal(0, backend.Accepted);
    }

    [Fact]
    public async Task A_terminated_client_that_resets_ends_its_relay_and_the_backend_connection_at_once()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term((IPEndPoint)listener.LocalEndpoint, h, clientCa: null), limits: NoBan));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(h.Endpoint);
        var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: true);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "vpn.initech.example",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            EnabledSslProtocols = SslProtocols.Tls13,
        });
        await tls.WriteAsync("hello"u8.ToArray());
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        backend.ReceiveTimeout = 10_000;
        Assert.True(backend.Receive(new byte[4096]) > 0); // the PROXY header and the hello

        tcp.Client.LingerState = new LingerOption(true, 0);
        tcp.Client.Close(); // the client goes away with a reset, while the backend keeps sending
        var chunk = new byte[16 * 1024];
        var sending = Task.Run(() =>
        {
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (DateTime.UtcNow < until)
            {
                backend.Send(chunk); // the gateway closing its side makes this fail
                Thread.Sleep(10);
            }
        });
        await Assert.ThrowsAnyAsync<SocketException>(() => sending.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static string Term(IPEndPoint backend, GatewayHarness h, string? clientCa, string mode = "optional") => $"""
          - sni: vpn.initech.example
            name: initech
            terminate:
              certificate: {h.Server.CertificatePath}
              key: {h.Server.KeyPath}
        {(clientCa is null ? "" : $"      client-ca: {clientCa}\n      client-certificate: {mode}")}
              backend: {backend}
        """;

    private static async Task<(SslStream? Tls, Exception? Error)> TlsConnectAsync(GatewayHarness h, X509Certificate2? clientCert)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(h.Endpoint);
        var tls = new SslStream(tcp.GetStream(), false);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "vpn.initech.example",
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
                ClientCertificates = clientCert is null ? null : new X509CertificateCollection { clientCert },
                EnabledSslProtocols = SslProtocols.Tls13,
            });
            return (tls, null);
        }
        catch (Exception e)
        {
            tls.Dispose();
            return (null, e);
        }
    }

    /// <summary>
    /// The PROXY header the backend got on <paramref name="connection"/>, once it has come with at least
    /// <paramref name="restAtLeast"/> bytes after it: the backend answers its first read, which may hold the header
    /// alone, so the client's data can still be on its way when the client has the answer.
    /// </summary>
    private static ProxyHeader ReadProxy(FakeBackend backend, int connection, out byte[] rest, int restAtLeast = 0)
    {
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => backend.Accepted > connection
            && ProxyV2Parser.TryParse(backend.Bytes(connection), 4096, out _, out int used) == ProxyParseResult.Ok
            && backend.Bytes(connection).Length >= used + restAtLeast));
        var got = backend.Bytes(connection);
        ProxyV2Parser.TryParse(got, 4096, out var header, out int consumed);
        rest = got[consumed..];
        return header!;
    }

    /// <summary>
    /// ticket-key-file: a client back with the session ticket a terminating route gave it resumes after a reload and
    /// after a restart when the key is the same, and makes a full handshake when the file holds another key.
    /// </summary>
    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_terminating_route_resumes_its_tickets_after_a_reload_and_a_restart_when_the_key_is_kept(bool sameKey)
    {
        var skip = SClient.SkipReason("gateway resumption");
        Skip.If(skip is not null, skip);
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, null), extra: "ticket-key-file: state/ticket.key", limits: NoBan));
        var key = h.Dir.File("state/ticket.key");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        var session = h.Dir.File("session.pem");

        async Task<string> SClientAsync(string option)
        {
            using var client = SClient.Start("-connect", h.Endpoint.ToString(), "-servername", "vpn.initech.example", "-tls1_3", option, session);
            return await client.EndAsync(TimeSpan.FromMilliseconds(500));
        }

        var first = await SClientAsync("-sess_out");
        Assert.True(first.Contains("New, TLSv1.3"), first);
        if (!sameKey) Isotun.Security.SecretFile.WriteAllBytes(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(80), overwrite: true);
        var expected = sameKey ? "Reused, TLSv1.3" : "New, TLSv1.3";

        // A reload builds every route anew (a new TLS context each) and reads the key file again.
        var reload = GatewayConfigLoader.Load(h.ConfigPath);
        Assert.Empty(h.Gateway!.Apply(reload.Config!));
        var afterReload = await SClientAsync("-sess_in");
        Assert.True(afterReload.Contains(expected), afterReload);
        Assert.Equal(sameKey ? 1 : 0, h.Metrics.Total("handshakes", "resumed"));
        Assert.Equal(sameKey ? 1 : 2, h.Metrics.Total("handshakes", "full"));

        await h.RestartAsync();
        var afterRestart = await SClientAsync("-sess_in");
        Assert.True(afterRestart.Contains(expected), afterRestart);
        Assert.Equal(sameKey ? 1 : 0, h.Metrics.Total("handshakes", "resumed"));
    }

    /// <summary>
    /// A resumed session presents no certificate on its connection (TLS 1.3 has no client certificate with a PSK); the
    /// one it presented earlier in the session travels on, flagged as from the session (PP2_CLIENT_CERT_SESS), not as
    /// presented on this connection, and still verified.
    /// </summary>
    [SkippableFact]
    public async Task A_resumed_session_forwards_its_certificate_as_presented_in_the_session_not_on_the_connection()
    {
        var skip = SClient.SkipReason("gateway resumption with a client certificate");
        Skip.If(skip is not null, skip);
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath), limits: NoBan));
        var session = h.Dir.File("session.pem");

        async Task<string> SClientAsync(string option)
        {
            using var client = SClient.Start("-connect", h.Endpoint.ToString(), "-servername", "vpn.initech.example", "-tls1_3",
                "-cert", h.Client.CertificatePath, "-key", h.Client.KeyPath, option, session);
            return await client.EndAsync(TimeSpan.FromMilliseconds(500));
        }

        var first = await SClientAsync("-sess_out");
        Assert.True(first.Contains("New, TLSv1.3"), first);
        var second = await SClientAsync("-sess_in");
        Assert.True(second.Contains("Reused, TLSv1.3"), second);
        Assert.Equal(1, h.Metrics.Total("handshakes", "resumed"));

        var full = ReadProxy(backend, 0, out _);
        Assert.Equal(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession, full.Ssl!.Client);
        Assert.True(full.Ssl.CertificateVerified);
        var resumed = ReadProxy(backend, 1, out _);
        Assert.Equal(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateInSession, resumed.Ssl!.Client);
        Assert.True(resumed.Ssl.CertificateVerified);
        Assert.Equal("alice", resumed.Ssl.CommonName);
        Assert.Equal(full.ClientCertificate, resumed.ClientCertificate);
    }

    [Fact]
    public async Task Terminate_verifies_the_client_certificate_and_sends_ssl_tlvs()
    {
        using var backend = new FakeBackend("plain-reply"u8.ToArray());
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath), limits: NoBan));
        using var alice = PemLoader.LoadCertificateWithKey(h.Client.CertificatePath, h.Client.KeyPath);

        var (tls, error) = await TlsConnectAsync(h, alice);
        Assert.True(tls is not null, error?.ToString());
        using (tls)
        {
            Assert.Equal("CN=vpn.initech.example", tls!.RemoteCertificate!.Subject);
            await tls.WriteAsync("hello in plaintext"u8.ToArray());
            var buf = new byte["plain-reply".Length];
            await tls.ReadExactlyAsync(buf).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal("plain-reply", System.Text.Encoding.ASCII.GetString(buf));
        }

        var header = ReadProxy(backend, 0, out var rest, restAtLeast: "hello in plaintext".Length);
        Assert.Equal("vpn.initech.example", header.Authority);
        Assert.NotNull(header.Ssl);
        Assert.Equal("TLSv1.3", header.Ssl!.Version);
        Assert.Equal("alice", header.Ssl.CommonName);
        Assert.True(header.Ssl.CertificateVerified);
        Assert.Equal(ProxyClientFlags.Ssl | ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession, header.Ssl.Client);
        // The certificate itself goes along, for the server to check against the tenant it picks.
        Assert.Equal(alice.RawData, header.ClientCertificate);
        Assert.Equal("hello in plaintext"u8.ToArray(), rest);
        Assert.Equal(1, h.Metrics.Total("handshakes", "ok"));
    }

    [Fact]
    public async Task Terminate_without_or_with_a_foreign_certificate_says_so_to_the_backend()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath), limits: NoBan));
        var other = new PkiDirectory(h.Dir.File("other-pki"));
        other.InitCa();
        var mallory = other.IssueClient("initech", "mallory");
        using var malloryCert = PemLoader.LoadCertificateWithKey(mallory.CertificatePath, mallory.KeyPath);

        var (plain, e1) = await TlsConnectAsync(h, null);
        Assert.True(plain is not null, e1?.ToString());
        await plain!.WriteAsync("x"u8.ToArray());
        var none = ReadProxy(backend, 0, out _);
        Assert.Equal(ProxyClientFlags.Ssl, none.Ssl!.Client);
        Assert.False(none.Ssl.CertificatePresented);
        Assert.Null(none.ClientCertificate);

        var (foreign, e2) = await TlsConnectAsync(h, malloryCert);
        Assert.True(foreign is not null, e2?.ToString());
        await foreign!.WriteAsync("x"u8.ToArray());
        var bad = ReadProxy(backend, 1, out _);
        Assert.True(bad.Ssl!.CertificatePresented);
        Assert.False(bad.Ssl.CertificateVerified);
        Assert.Equal("mallory", bad.Ssl.CommonName);
        Assert.Equal(malloryCert.RawData, bad.ClientCertificate);
        plain.Dispose();
        foreign.Dispose();
    }

    /// <summary>
    /// A foreign certificate naming where its issuer may be fetched (its AIA): the gateway looks it up nowhere, neither in
    /// the handshake nor in its own check, and tells the backend it is not verified.
    /// </summary>
    [Fact]
    public async Task Terminate_fetches_nothing_a_client_certificate_names()
    {
        using var site = new IssuerSite();
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath), limits: NoBan));
        using var mallory = OfflineChainTests.ForeignClientCertificate(site.Url);

        var tcp = new TcpClient();
        await tcp.ConnectAsync(h.Endpoint);
        await using var tls = new SslStream(tcp.GetStream(), false);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "vpn.initech.example",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            // The client's own chain offline too: only the gateway is under test.
            ClientCertificateContext = SslStreamCertificateContext.Create(mallory, null, offline: true),
            EnabledSslProtocols = SslProtocols.Tls13,
        });
        await tls.WriteAsync("x"u8.ToArray());
        var header = ReadProxy(backend, 0, out _);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the gateway took {clock.Elapsed} to pass the connection on");
        Assert.True(header.Ssl!.CertificatePresented);
        Assert.False(header.Ssl.CertificateVerified);
        site.AssertNobodyCame();
    }

    /// <summary>
    /// A client certificate whose extended key usage is encoded otherwise than DER allows (a length in long form
    /// where the short one fits): OpenSSL takes it, the runtime's own look at it throws. The handshake counts as a
    /// failed one, against the source address like any other, and nothing is logged as an error.
    /// </summary>
    [Fact]
    public async Task A_client_certificate_the_runtime_cannot_parse_is_a_failed_handshake_counted_against_its_source()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath), limits: "  ban-after: 2\n  ban-time: 60"));
        using var odd = MalformedUsageCertificate();
        for (int i = 0; i < 2; i++)
        {
            try
            {
                var (tls, _) = await TlsConnectAsync(h, odd);
                if (tls is not null)
                    using (tls)
                        await tls.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception e) when (e is IOException or AuthenticationException or SocketException)
            {
            }
        }
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("handshakes", "failed") == 2), $"failed handshakes: {h.Metrics.Total("handshakes", "failed")}");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("bans", "all") == 1));
        Assert.Equal(0, backend.Accepted);
        Assert.DoesNotContain(h.Log.Lines, l => l.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    /// <summary>A self-signed client certificate whose extended key usage has a non-minimal length (BER, not DER).</summary>
    internal static X509Certificate2 MalformedUsageCertificate()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=odd,OU=initech", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509Extension("2.5.29.37", Convert.FromHexString("30810a06082b06010505070302"), false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>When each terminating route's certificate expires is a metric an alert can watch.</summary>
    [Fact]
    public async Task A_terminating_routes_certificate_end_is_a_metric()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, null) + "\n" + Pass("vpn.acme.example", backend.Endpoint), limits: NoBan));
        using var exporter = new Isotun.Metrics.PrometheusExporter(m => m == h.Metrics.Meter);
        var notAfter = new DateTimeOffset(X509CertificateLoader.LoadCertificateFromFile(h.Server.CertificatePath).NotAfter.ToUniversalTime()).ToUnixTimeSeconds();
        var lines = exporter.Render().Split('\n').Where(l => l.StartsWith("isotun_gateway_tls_certificate_not_after_seconds{", StringComparison.Ordinal)).ToList();
        Assert.Equal([$"isotun_gateway_tls_certificate_not_after_seconds{{route=\"initech\"}} {notAfter}"], lines); // the passthrough route has none
    }

    /// <summary>
    /// A terminating route's certificate that is not for the route's name, or near its end, is still served (a client
    /// that pins it takes it), and the operator is told at start and at each reload that loads it.
    /// </summary>
    [Fact]
    public async Task A_terminating_certificate_not_for_the_routes_name_or_near_its_end_is_warned_of()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        var notAfter = new DateTimeOffset(X509CertificateLoader.LoadCertificateFromFile(h.Server.CertificatePath).NotAfter.ToUniversalTime());
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(notAfter.AddDays(-3));
        // The certificate is for vpn.initech.example; the route takes every name under initech.example.
        var yaml = Yaml(Term(backend.Endpoint, h, null).Replace("sni: vpn.initech.example", "sni: \"*.initech.example\""), limits: NoBan);
        h.Start(yaml, clock);
        string[] Warnings() => [.. h.Log.Lines.Where(l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning && l.Text.StartsWith("route initech: certificate ", StringComparison.Ordinal)).Select(l => l.Text)];
        Assert.Contains(Warnings(), w => w.Contains("is not for *.initech.example (it names vpn.initech.example)"));
        Assert.Contains(Warnings(), w => w.Contains("in 3 days: renew it and reload"));

        // Fixed in the file and reloaded: only the date is still told, once more.
        File.WriteAllText(h.ConfigPath, yaml.Replace("\"*.initech.example\"", "vpn.initech.example"));
        Assert.Empty(h.Gateway!.Reload());
        Assert.Single(Warnings(), w => w.Contains("is not for"));
        Assert.Equal(2, Warnings().Count(w => w.Contains("renew it and reload")));
    }

    [Fact]
    public async Task A_route_that_requires_a_certificate_refuses_clients_without_one()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath, mode: "required"), limits: NoBan));

        await AssertRefusedAsync(h, null, backend);
    }

    /// <summary>A client (with <paramref name="certificate"/>, or none) is refused after the handshake, counted as a bad client certificate, and no backend is reached.</summary>
    private static async Task AssertRefusedAsync(GatewayHarness h, X509Certificate2? certificate, FakeBackend backend)
    {
        var (tls, _) = await TlsConnectAsync(h, certificate);
        if (tls is not null)
        {
            // TLS 1.3: the client learns of the refusal on its first read.
            using (tls)
            {
                await Assert.ThrowsAnyAsync<Exception>(async () =>
                {
                    await tls.WriteAsync("x"u8.ToArray());
                    var buf = new byte[16];
                    if (await tls.ReadAsync(buf) == 0) throw new IOException("closed");
                });
            }
        }

        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("handshakes", "bad-client-certificate") == 1));
        Assert.Equal(0, backend.Accepted);
    }

    [Fact]
    public async Task A_route_that_requires_a_certificate_refuses_one_its_client_crl_lists()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Pki.Revoke(h.Client.CertificatePath);
        h.Start(Yaml(Term(backend.Endpoint, h, h.Pki.CaCertificatePath, mode: "required").Replace(
            "client-certificate: required", $"client-certificate: required\n      client-crl: {h.Pki.CrlPath}"), limits: NoBan));
        Assert.Equal(h.Pki.CrlPath, h.Gateway!.Config.Routes.Single().Terminate!.ClientCrl);
        using var alice = PemLoader.LoadCertificateWithKey(h.Client.CertificatePath, h.Client.KeyPath);

        await AssertRefusedAsync(h, alice, backend);
    }

    [Fact]
    public async Task Reload_changes_routes_without_dropping_established_connections_and_refuses_bad_files()
    {
        using var first = new FakeBackend("first"u8.ToArray());
        using var second = new FakeBackend("second"u8.ToArray());
        await using var h = new GatewayHarness();
        var yaml = Yaml(Pass("vpn.acme.example", first.Endpoint), limits: NoBan);
        h.Start(yaml);

        // An established connection through the first backend.
        using var established = h.Connect();
        established.Send(TlsVectors.OpenSslWithSni);
        var buf = new byte[64];
        Assert.Equal("first", System.Text.Encoding.ASCII.GetString(buf, 0, established.Receive(buf)));

        File.WriteAllText(h.ConfigPath, yaml.Replace(first.Endpoint.ToString(), second.Endpoint.ToString()));
        Assert.Empty(h.Gateway!.Reload());

        Assert.Equal("second", System.Text.Encoding.ASCII.GetString(h.SendAndDrain(TlsVectors.OpenSslWithSni)!));
        established.Send("still here"u8);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => first.Bytes(0).Length == TlsVectors.OpenSslWithSni.Length + 10));

        // A bad file: every error listed, nothing changes.
        File.WriteAllText(h.ConfigPath, yaml.Replace("passthrough:", "passthru:").Replace("preread-timeout: 1", "preread-timeout: 0"));
        var errors = h.Gateway.Reload();
        Assert.Contains(errors, e => e.Path == "routes[0].passthru" && e.Message.Contains("unknown key"));
        Assert.Contains(errors, e => e.Path == "limits.preread-timeout");
        Assert.Equal("second", System.Text.Encoding.ASCII.GetString(h.SendAndDrain(TlsVectors.OpenSslWithSni)!));
        Assert.Equal(1, h.Metrics.Total("reloads", "refused"));
        Assert.Equal(1, h.Metrics.Total("reloads", "ok"));

        established.Send("and now"u8);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => first.Bytes(0).Length == TlsVectors.OpenSslWithSni.Length + 17));
    }

    [Fact]
    public async Task Repeated_failures_ban_the_source_address()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: "  ban-after: 3\n  ban-time: 60"));

        for (int i = 0; i < 3; i++) h.SendAndDrain("GET / HTTP/1.0\r\n\r\n"u8.ToArray());
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("bans", "all") == 1));

        // Even a good hello is now refused at accept time.
        var reply = h.SendAndDrain(TlsVectors.OpenSslWithSni);
        Assert.True(reply is null || reply.Length == 0);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Metrics.Total("rejected", "banned") >= 1));
        Assert.Equal(0, backend.Accepted);
    }

    [Fact]
    public async Task Per_address_concurrency_is_capped()
    {
        using var backend = new FakeBackend();
        await using var h = new GatewayHarness();
        h.Start(Yaml(Pass("vpn.acme.example", backend.Endpoint), limits: NoBan).Replace("per-ip-connections: 1000", "per-ip-connections: 2").Replace("preread-timeout: 1", "preread-timeout: 10"));

        using var a = h.Connect();
        using var b = h.Connect();
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => h.Gateway!.Limiter.Active == 2));
        var reply = h.SendAndDrain(TlsVectors.OpenSslWithSni);
        Assert.True(reply is null || reply.Length == 0);
        Assert.Equal(1, h.Metrics.Total("rejected", "ip-concurrency"));
    }
}
