using System.Globalization;
using Isotun.Metrics;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A session's memory budget, end to end: a peer that stops reading fills its socket, then its send queue up to the
/// budget in bytes, and every frame past that is dropped and counted as over-budget. Another session of the same
/// tenant goes on.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessMemoryBudgetTests(InProcessPki pki)
{
    private const long Budget = 256 * 1024;

    private static double Sample(string scrape, string series, string tenant, string extra = "") =>
        scrape.Split('\n').Where(l => l.StartsWith(series + "{", StringComparison.Ordinal)
                && l.Contains($"tenant=\"{tenant}\"", StringComparison.Ordinal) && l.Contains(extra, StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    [Fact]
    public async Task A_peer_that_stops_reading_pins_no_more_than_its_sessions_budget_and_the_rest_is_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki, uso: true, server: c => c with { Limits = c.Limits with { SessionMemory = Budget } },
            t => t with { PasswordFile = pki.Passwords });
        using var exporter = server.Server.Metrics.Exporter();
        // The stalled peer logs in and connects, then never reads a byte.
        await using var stalled = await RawCstpClient.ConnectAsync(server.Options());
        var stalledAddress = stalled.Parameters!.Address;
        await using var healthy = await InProcessClient.ConnectAsync(server, server.Options());
        var tun = server.Tun();

        // Far more than the loopback socket buffers hold, so that the rest must queue, then be dropped.
        var big = Packets.Framed(Packets.Udp(Packets.Far4, stalledAddress, 40000, 7, new byte[1372]), tun.Offload);
        for (int i = 0; i < 20_000; i++)
            while (!tun.Inject(big)) await Task.Delay(1); // the TUN queue is full: wait for its reader, as the kernel would

        await Eventually.True(() => Sample(exporter.Render(), "isotun_tunnel_drops_total", server.Tenant, "reason=\"over-budget\"") > 0,
            "no frame for the stalled peer was dropped as over its budget");
        var scrape = exporter.Render();
        Assert.InRange(Sample(scrape, "isotun_tunnel_send_queue_bytes", server.Tenant), 1, Budget);
        Assert.Equal(2 * Budget, Sample(scrape, "isotun_tunnel_send_queue_budget_bytes", server.Tenant));
        Assert.Equal(0, Sample(scrape, "isotun_tunnel_drops_total", server.Tenant, "reason=\"queue-full\""));
        var session = server.Session(stalledAddress)!;
        Assert.InRange(session.Budget.Held, 1, Budget);

        // The other session of the tenant still gets its packets.
        for (int i = 0; i < 20; i++)
            Assert.True(tun.Inject(Packets.Framed(Packets.Numbered(Packets.Far4, healthy.Address, i), tun.Offload)));
        for (int i = 0; i < 20; i++) Packets.Take(healthy.Tun, $"packet {i} did not reach the healthy session");
    }
}
