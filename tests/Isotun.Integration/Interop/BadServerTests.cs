using System.Text;
using Isotun.Integration.Infrastructure;
using Isotun.Linux;
using Isotun.Protocol.Cstp;
using Xunit.Abstractions;

namespace Isotun.Integration.Interop;

/// <summary>A namespace with only loopback up, where the fake servers listen and `isotun connect` runs.</summary>
public sealed class BadServerNamespace : IDisposable
{
    public const string Name = "isotun-ocf-cli";

    private readonly LabLock? _lock;

    public BadServerNamespace()
    {
        if (TestEnvironment.SkipReason is not null) return;
        _lock = LabLock.Acquire("ocf", TimeSpan.FromMinutes(15));
        if (NetworkNamespace.Exists(Name)) IpCommand.TryRun("netns", "del", Name); // left over by a killed run
        IpCommand.Run("netns", "add", Name);
        IpCommand.RunIn(Name, "link", "set", "lo", "up");
    }

    public void Dispose()
    {
        if (_lock is null) return;
        if (NetworkNamespace.Exists(Name)) IpCommand.TryRun("netns", "del", Name);
        _lock.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class BadServerCollection : ICollectionFixture<BadServerNamespace>
{
    public const string Name = "interop: isotun connect against bad servers";
}

/// <summary>
/// The real `isotun connect` against servers that break the protocol in one way each. Every case must end
/// with a clear message and the documented exit code, well before the harness's 60 s limit: never a hang.
/// </summary>
[Collection(BadServerCollection.Name)]
public sealed class BadServerTests(ITestOutputHelper output) // the collection sets up BadServerNamespace once for these tests
{
    private const string Ns = BadServerNamespace.Name;
    private const string Device = "ocf0";

    /// <summary>How the client is run: a password login (auth phase) or straight to CONNECT with a cookie (tunnel phase).</summary>
    private enum Phase { Login, Tunnel }

    private sealed record Case(Phase Phase, Func<FakeExchange, Task> Server, int ExitCode, string Message, bool Tls = true);

    private const string GoodConnected =
        "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 10.99.0.2\r\nX-CSTP-Netmask: 255.255.255.0\r\n" +
        "X-CSTP-DPD: 30\r\nX-CSTP-Keepalive: 20\r\nX-CSTP-MTU: 1400\r\n\r\n";

    private static readonly Dictionary<string, Case> Cases = new()
    {
        // --- the login phase ---
        ["not TLS at all"] = new(Phase.Login, ex => ex.WriteAsync("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), 1, "TLS handshake", Tls: false),
        ["binary garbage instead of HTTP"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            var junk = new byte[4096];
            new Random(41).NextBytes(junk);
            await ex.WriteAsync(junk);
        }, 5, "reply is not HTTP"),
        ["an HTTP head that never ends"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 200 OK\r\nX-Padding: ");
            var more = Encoding.ASCII.GetBytes(new string('A', 16 * 1024));
            for (int i = 0; i < 64; i++) await ex.WriteAsync(more);
            await ex.HoldAsync();
        }, 5, "bad HTTP response (TooLarge)"),
        ["truncated headers, then close"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Le");
        }, 5, "truncated headers"),
        ["truncated headers, then silence"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n");
            await ex.HoldAsync();
        }, 5, "did not answer"),
        ["a body shorter than its Content-Length"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 500\r\n\r\n<?xml version=\"1.0\"?><config-auth");
        }, 5, "truncated"),
        ["XML that is not XML"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            const string body = "<config-auth client=\"vpn\" type=\"auth-request\"><auth id=\"main\"><form><<<";
            await ex.WriteAsync($"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {body.Length}\r\n\r\n{body}");
            await ex.HoldAsync();
        }, 5, "unreadable login reply"),
        ["HTTP 500 to the login"] = new(Phase.Login, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
            await ex.HoldAsync();
        }, 5, "HTTP 500"),
        ["a login form for ever"] = new(Phase.Login, async ex =>
        {
            // A form with only an unknown field: the client cannot make progress and must stop counting rounds.
            const string body = "<?xml version=\"1.0\"?><config-auth client=\"vpn\" type=\"auth-request\"><auth id=\"main\">" +
                "<form method=\"post\" action=\"/auth\"><input type=\"text\" name=\"token\" label=\"Token:\"/></form></auth></config-auth>";
            while (await ex.ReadRequestAsync() is not null)
                await ex.WriteAsync($"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {body.Length}\r\n\r\n{body}");
        }, 5, "did not finish"),

        ["a session cookie with a line in it"] = new(Phase.Login, async ex =>
        {
            // Printed as it is, it would have added a line (HOST=…) to --authenticate's output, and a header to the CONNECT.
            const string body = "<?xml version=\"1.0\"?><config-auth client=\"vpn\" type=\"complete\"><auth id=\"success\"/>" +
                "<session-token>abc&#10;HOST=evil.example</session-token></config-auth>";
            await ex.ReadRequestAsync();
            await ex.WriteAsync($"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {body.Length}\r\n\r\n{body}");
            await ex.HoldAsync();
        }, 5, "not a cookie value"),

        // --- the tunnel phase (CONNECT with a cookie) ---
        ["the cookie is refused"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 401 Cookie is not acceptable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }, 4, "rejected the session cookie"),
        ["no MTU"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected.Replace("X-CSTP-MTU: 1400\r\n", ""));
            await ex.HoldAsync();
        }, 5, "no MTU"),
        ["no address"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected.Replace("X-CSTP-Address: 10.99.0.2\r\n", ""));
            await ex.HoldAsync();
        }, 5, "no IP address"),
        ["an address that is not one"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected.Replace("10.99.0.2", "10.99.0.999"));
            await ex.HoldAsync();
        }, 5, "unusable address"),
        ["truncated CONNECT reply, then close"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Addr");
        }, 5, "truncated headers"),
        ["503 with a reason"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync("HTTP/1.1 503 Service Unavailable\r\nX-Reason: no address left in the pool\r\nContent-Length: 0\r\n\r\n");
        }, 1, "no address left in the pool"),
        ["garbage instead of frames"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected);
            await ex.WriteAsync(Encoding.ASCII.GetBytes("<html><body>surprise</body></html>\r\n"));
            await ex.HoldAsync();
        }, 5, "malformed frame"),
        ["GSO frames that were not negotiated"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected);
            for (int i = 0; i < 9; i++) await ex.WriteAsync(GsoFrame(84));
            await ex.HoldAsync();
        }, 5, "malformed frame"),
        ["plain packets above the MTU in GSO frames"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected.Replace("\r\n\r\n", $"\r\n{IsotunExtensions.Header}: gso\r\n\r\n"));
            for (int i = 0; i < 9; i++) await ex.WriteAsync(GsoFrame(3000));
            await ex.HoldAsync();
        }, 5, "malformed frame"),
        ["the server ends the session"] = new(Phase.Tunnel, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected);
            byte[] reason = [CstpDisconnectReason.Error, .. "kicked by admin"u8.ToArray()];
            var frame = new byte[CstpFrame.HeaderLength + reason.Length];
            CstpFrame.Write(frame, CstpPacketType.Disconnect, reason);
            await ex.WriteAsync(frame);
            await ex.HoldAsync();
        }, 4, "the server ended the session (kicked by admin)"),
    };

    public static TheoryData<string> CaseNames => new(Cases.Keys);

    /// <summary>An IsotunGso frame: an empty virtio-net header and an IPv4 packet of <paramref name="length"/> bytes to the client.</summary>
    private static byte[] GsoFrame(int length)
    {
        var payload = new byte[Protocol.Offload.VirtioNetHeader.Length + length];
        var ip = payload.AsSpan(Protocol.Offload.VirtioNetHeader.Length);
        ip[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)length);
        ip[8] = 64;
        ip[9] = 17;
        byte[] from = [10, 99, 0, 1], to = [10, 99, 0, 2];
        from.CopyTo(ip[12..]);
        to.CopyTo(ip[16..]);
        var frame = new byte[CstpFrame.HeaderLength + payload.Length];
        CstpFrame.Write(frame, CstpPacketType.IsotunGso, payload);
        return frame;
    }

    [SkippableTheory]
    [MemberData(nameof(CaseNames))]
    public void The_client_fails_clearly_and_in_time(string name)
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var c = Cases[name];
        using var server = new FakeVpnServer(Ns, c.Server, c.Tls);
        var r = c.Phase == Phase.Login
            ? Run.Isotun(Ns, ["connect", server.Url, "--authenticate", "--user", "alice", "--passwd-on-stdin", "--servercert", server.Pin], stdin: "pw\n")
            : Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device], stdin: "cookie\n");
        output.WriteLine($"exit {r.ExitCode}: {r.Stderr.Trim()}");
        Assert.False(r.ExitCode == -1, $"isotun connect hung on '{name}': {r}");
        Assert.True(r.ExitCode == c.ExitCode, $"'{name}': expected exit {c.ExitCode}: {r}");
        Assert.Contains(c.Message, r.Stderr);
        Assert.DoesNotContain("HOST=", r.Stdout); // a failed --authenticate prints nothing for a shell to take
        Assert.StartsWith("isotun connect: ", r.Stderr.Trim().Split('\n')[^1]);
        Assert.True(server.Errors.IsEmpty, "the fake server itself failed: " + string.Join("\n", server.Errors));
        Assert.False(NetworkNamespace.Exists(Ns) && Traffic.TunDevices(Ns).Contains(Device), $"'{name}' left {Device} behind");
    }

    /// <summary>
    /// A server that answers every CONNECT and closes at once: the client waits between its attempts (1, 2, 4 s…) and
    /// gives up at its reconnect timeout, instead of reconnecting as fast as it can for ever.
    /// </summary>
    [SkippableFact]
    public void A_server_that_closes_every_tunnel_at_once_is_retried_with_back_off_until_the_reconnect_timeout()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var server = new FakeVpnServer(Ns, async ex =>
        {
            await ex.ReadRequestAsync();
            await ex.WriteAsync(GoodConnected);
        });
        var r = Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device,
            "--reconnect-timeout", "6"], stdin: "cookie\n", timeoutSeconds: 90);
        output.WriteLine($"exit {r.ExitCode} after {server.Requests.Count} CONNECTs: {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 1, $"expected exit 1 (gave up): {r}");
        Assert.Contains("could not reconnect within 6 s", r.Stderr);
        // Lost at 0 s, then attempts after 1, 2 and 4 s of waiting: a handful, not hundreds.
        Assert.InRange(server.Requests.Count, 3, 6);
        Assert.True(server.Errors.IsEmpty, "the fake server itself failed: " + string.Join("\n", server.Errors));
        Assert.False(NetworkNamespace.Exists(Ns) && Traffic.TunDevices(Ns).Contains(Device), $"{Device} was left behind");
    }

    /// <summary>
    /// A reconnect whose CONNECT the server never answers: the attempt is cut at the reconnect timeout, and the client
    /// gives up then, not after the attempt's own 30 s wait for an answer.
    /// </summary>
    [SkippableFact]
    public void A_reconnect_the_server_never_answers_gives_up_at_the_reconnect_timeout()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        int connections = 0;
        using var server = new FakeVpnServer(Ns, async ex =>
        {
            await ex.ReadRequestAsync();
            if (Interlocked.Increment(ref connections) == 1) await ex.WriteAsync(GoodConnected);
            else await ex.HoldAsync();
        });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device,
            "--reconnect-timeout", "4"], stdin: "cookie\n", timeoutSeconds: 90);
        output.WriteLine($"exit {r.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s and {connections} connections: {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 1, $"expected exit 1 (gave up reconnecting): {r}");
        Assert.Contains("could not reconnect within 4 s: the last attempt did not finish in time", r.Stderr);
        // 4 s, and the start; an attempt left to its own 30 s wait would end it past 30 s.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(25), $"gave up after {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>
    /// A reconnect whose server gives another MTU (a tenant changed and restarted, another node): the TUN takes it, so
    /// nothing the host sends is above what the server takes.
    /// </summary>
    [SkippableFact]
    public void A_reconnect_that_gives_another_mtu_sets_it_on_the_tun()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        int connections = 0;
        using var server = new FakeVpnServer(Ns, async ex =>
        {
            await ex.ReadRequestAsync();
            if (Interlocked.Increment(ref connections) == 1)
            {
                await ex.WriteAsync(GoodConnected); // MTU 1400, then the connection drops
                await Task.Delay(1000);
                return;
            }
            await ex.WriteAsync(GoodConnected.Replace("X-CSTP-MTU: 1400", "X-CSTP-MTU: 1300"));
            await ex.HoldAsync();
        });
        using var client = BackgroundProcess.StartInNs(Ns, TestEnvironment.IsotunExe,
            ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device], stdin: "cookie\n");
        string Link() => Run.InNs(Ns, "ip", "link", "show", "dev", Device).Stdout;
        Assert.True(client.WaitFor(() => Volatile.Read(ref connections) >= 2 && Link().Contains(" mtu 1300 "), TimeSpan.FromSeconds(30)),
            $"the TUN did not take the reconnect's MTU ({Link().Trim()}): {client}");
        Assert.Contains("the server's MTU changed from 1400 to 1300", client.Output);
        client.Signal("TERM");
        Assert.True(client.WaitForExit(TimeSpan.FromSeconds(15)), "isotun connect did not end: " + client);
    }

    /// <summary>
    /// Once the tunnel was up, an answer cut short (or none in time) while reconnecting is a failure of the moment: the
    /// client tries again until its reconnect timeout, where on a first connection it is a protocol error (exit 5).
    /// </summary>
    [SkippableFact]
    public void A_reconnect_answered_with_a_cut_short_head_is_tried_again_until_the_reconnect_timeout()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        int connections = 0;
        using var server = new FakeVpnServer(Ns, async ex =>
        {
            await ex.ReadRequestAsync();
            if (Interlocked.Increment(ref connections) == 1) await ex.WriteAsync(GoodConnected);
            else await ex.WriteAsync("HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Addr");
        });
        var r = Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device,
            "--reconnect-timeout", "6"], stdin: "cookie\n", timeoutSeconds: 90);
        output.WriteLine($"exit {r.ExitCode} after {connections} connections: {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 1, $"expected exit 1 (gave up reconnecting): {r}");
        Assert.Contains("could not reconnect within 6 s: server closed the connection before a complete HTTP response", r.Stderr);
        Assert.InRange(connections, 3, 6);
    }

    /// <summary>
    /// Routes a server cannot break: a netmask of 0.0.0.0 does not replace the host's default route, a dual-stack
    /// reply with only its IPv6 network still takes all of IPv4 (as its two halves), an excluded network keeps the way
    /// it had, and the routes made on the underlay (the host route to the server, the excluded network) are taken away
    /// when the client ends.
    /// </summary>
    [SkippableFact]
    public void A_hostile_netmask_leaves_the_default_route_alone_and_the_client_takes_away_its_host_route_at_exit()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        const string uplink = "ocf-up";
        IpCommand.RunIn(Ns, "link", "add", uplink, "type", "veth", "peer", "name", uplink + "p"); // an uplink with a default route
        try
        {
            IpCommand.RunIn(Ns, "addr", "add", "198.18.99.1/24", "dev", uplink);
            IpCommand.RunIn(Ns, "link", "set", uplink, "up");
            IpCommand.RunIn(Ns, "link", "set", uplink + "p", "up");
            IpCommand.RunIn(Ns, "route", "add", "default", "via", "198.18.99.254");
            string v4 = "", v6 = "";
            int connections = 0;
            using var server = new FakeVpnServer(Ns, async ex =>
            {
                await ex.ReadRequestAsync();
                if (Interlocked.Increment(ref connections) > 1)
                {
                    await ex.WriteAsync("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                await ex.WriteAsync("HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Address: 10.99.0.2\r\nX-CSTP-Netmask: 0.0.0.0\r\n" +
                    "X-CSTP-Address-IP6: fd00:99::2/64\r\nX-CSTP-Split-Include-IP6: fd00:99::/64\r\nX-CSTP-Split-Exclude: 198.18.77.0/255.255.255.0\r\n" +
                    "X-CSTP-DPD: 30\r\nX-CSTP-Keepalive: 20\r\nX-CSTP-MTU: 1400\r\n\r\n");
                // The client sets its routes once it has read the reply, the tunnel's first and the underlay's last: seen
                // here, then the tunnel ends.
                Eventually.Until(TimeSpan.FromSeconds(20), () => IpCommand.Exec("ip", ["-n", Ns, "-4", "route", "show"], check: false).Output is var all
                    && all.Contains("128.0.0.0/1") && all.Contains("127.0.0.1") && all.Contains("198.18.77.0/24"));
                v4 = IpCommand.RunIn(Ns, "-4", "route", "show");
                v6 = IpCommand.RunIn(Ns, "-6", "route", "show", "dev", Device);
            });
            var r = Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device,
                "--reconnect-timeout", "1"], stdin: "cookie\n", timeoutSeconds: 60);
            output.WriteLine($"{r}\nIPv4 routes while up:\n{v4}\nIPv6 routes on {Device}:\n{v6}\nserver errors: {string.Join("\n", server.Errors)}");
            Assert.True(r.ExitCode == 1, r.ToString());
            Assert.Contains("default via 198.18.99.254", v4);
            Assert.Contains($"0.0.0.0/1 dev {Device}", v4);
            Assert.Contains($"128.0.0.0/1 dev {Device}", v4);
            Assert.DoesNotContain($"default dev {Device}", v4);
            Assert.Contains("127.0.0.1 dev lo", v4); // the pin to the server
            Assert.Contains("198.18.77.0/24 via 198.18.99.254 dev ocf-up", v4); // excluded: kept the way it went
            Assert.Contains("fd00:99::/64", v6);
            var after = IpCommand.RunIn(Ns, "-4", "route", "show");
            Assert.Contains("default via 198.18.99.254", after);
            Assert.DoesNotContain("127.0.0.1", after);
            Assert.DoesNotContain("198.18.77.0", after);
        }
        finally
        {
            IpCommand.TryRun("-n", Ns, "route", "del", "127.0.0.1/32");
            IpCommand.TryRun("-n", Ns, "link", "del", uplink);
        }
    }

    /// <summary>A server's reason is shown tamed: no terminal controls (a C1 CSI here), no line breaks, and short.</summary>
    [SkippableFact]
    public void A_hostile_reason_reaches_the_terminal_printable_and_short()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var server = new FakeVpnServer(Ns, async ex =>
        {
            await ex.ReadRequestAsync();
            // Header bytes are read as Latin-1: 0x9b is the C1 control CSI, which some terminals act on.
            var head = new List<byte>(Encoding.ASCII.GetBytes("HTTP/1.1 503 Service Unavailable\r\nX-Reason: pool empty "));
            head.AddRange([0x9b, (byte)'2', (byte)'J']);
            head.AddRange(Encoding.ASCII.GetBytes(new string('A', 10_000) + "\r\nContent-Length: 0\r\n\r\n"));
            await ex.WriteAsync(head.ToArray());
        });
        var r = Run.Isotun(Ns, ["connect", server.Url, "--cookie-on-stdin", "--servercert", server.Pin, "--interface", Device,
            "--reconnect-timeout", "1"], stdin: "cookie\n");
        var last = r.Stderr.Trim().Split('\n')[^1];
        output.WriteLine($"exit {r.ExitCode}: {last.Length} characters");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("CONNECT refused: HTTP 503 pool empty ?2J", last);
        Assert.DoesNotContain('\u009b', r.Stderr);
        Assert.InRange(last.Length, 1, 600);
    }

    [SkippableFact]
    public void A_wrong_pin_stops_the_client_before_it_sends_anything()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using var server = new FakeVpnServer(Ns, async ex => { await ex.ReadRequestAsync(); });
        var r = Run.Isotun(Ns, ["connect", server.Url, "--authenticate", "--user", "alice", "--passwd-on-stdin",
            "--servercert", "pin-sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="], stdin: "secret-password\n");
        output.WriteLine($"exit {r.ExitCode}: {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 6, r.ToString());
        Assert.Contains("does not match the pin", r.Stderr);
        Assert.Contains(server.Pin, r.Stderr); // names the pin the server really has
        Assert.Empty(server.Requests); // the password never went to the impostor
    }
}
