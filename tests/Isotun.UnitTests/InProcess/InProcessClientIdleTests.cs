using Isotun.Client;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The client at rest: its TUN threads sleep until a packet comes (no timer wakes them), its DPD and keepalive are
/// checked when due, and a server gone silent is still found dead and left for a new connection with the cookie.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessClientIdleTests(InProcessPki pki)
{
    [Fact]
    public async Task An_idle_client_keeps_its_tun_threads_asleep_until_a_packet_and_ends_them_when_it_stops()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var queue = client.Tun.Queues[0];
        await Eventually.True(() => queue.Waiting == 0, "the client's TUN thread did not read the probe");
        await Task.Delay(300); // for the thread to go back to its wait
        long waits = queue.Waits;

        await Task.Delay(1200); // the old thread woke every 250 ms to look for a stop
        Assert.Equal(waits, queue.Waits);

        client.RoundTrip(server); // a packet wakes it, and it sleeps again
        await Eventually.True(() => queue.Waits == waits + 1, $"waits {queue.Waits}, expected {waits + 1}");

        Assert.NotEmpty(ClientTunThreads());
        await client.DisposeAsync();
        await Eventually.True(() => ClientTunThreads().Count == 0, "a TUN thread outlived the client");
    }

    /// <summary>
    /// A TUN whose reads fail (its device deleted under the client: the kernel's reads then fail with EBADFD) ends the
    /// client with exit 1 and the session logged off, instead of a client that runs on with no TUN.
    /// </summary>
    [Fact]
    public async Task A_failing_tun_ends_the_client_with_a_failure_and_logs_the_session_off()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var address = client.Address;
        Assert.NotNull(server.Session(address));
        client.Tun.Queues[0].Fail("File descriptor in bad state");
        var e = await Assert.ThrowsAsync<ClientException>(() => client.Run.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(ClientExitCode.Failure, e.Code);
        Assert.Equal("the TUN device failed: File descriptor in bad state; the session was logged off", e.Message);
        await Eventually.True(() => server.Session(address) is null, "the session was not logged off");
    }

    [Fact]
    public async Task A_client_whose_server_goes_silent_gives_up_after_twice_its_dpd_and_reconnects_with_its_cookie()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Dpd = 1, Keepalive = 1 });
        await SilenceAndReconnectAsync(server, forceDpd: null);
    }

    [Fact]
    public async Task With_force_dpd_a_client_finds_a_silent_server_dead_long_before_the_servers_own_dpd()
    {
        // The server asks for an hour; the user's --force-dpd 1 makes the client give up on a silent one in 2 s.
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Dpd = 3600, Keepalive = 3600 });
        await SilenceAndReconnectAsync(server, forceDpd: 1);
    }

    /// <summary>
    /// A client connected through a relay that then goes silent: after 2 × DPD the client gives up on the connection
    /// and opens a new one with its cookie, and the same session (same address) is served by it.
    /// </summary>
    private static async Task SilenceAndReconnectAsync(InProcessServer server, int? forceDpd)
    {
        await using var relay = new FreezingRelay(server.Port);
        var options = server.Options() with { Server = new Uri($"https://127.0.0.1:{relay.Port}/{server.Tenant}"), ForceDpd = forceDpd };
        await using var client = await InProcessClient.ConnectAsync(server, options);
        var session = server.Session(client.Address)!;
        var first = session.Connection;
        int accepted = relay.Accepted;

        relay.Freeze();

        await Eventually.True(() => relay.Accepted > accepted && session.Connection is { } c && !ReferenceEquals(c, first),
            "the client did not leave the silent connection for a new one", TimeSpan.FromSeconds(15));
        Assert.Same(session, server.Session(client.Address));
        Assert.False(client.Run.IsCompleted);
        await client.CarriesAsync(server);
        client.RoundTrip(server);
    }

    /// <summary>The names of this process's threads that read a client TUN (the client names them tun-client-N).</summary>
    private static List<string> ClientTunThreads() =>
        Directory.EnumerateDirectories("/proc/self/task")
            .Select(t => { try { return File.ReadAllText(Path.Combine(t, "comm")).Trim(); } catch (IOException) { return ""; } })
            .Where(n => n.StartsWith("tun-client-", StringComparison.Ordinal))
            .ToList();
}
