using System.Globalization;
using Isotun.Metrics;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// Queue utilization, measured: each TUN queue reader's busy and running seconds, and the send queues' depth, capacity
/// and high-water mark per tenant, as a scrape renders them.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessQueueMetricsTests(InProcessPki pki)
{
    private static double Sample(string scrape, string series, string tenant, string extra = "")
    {
        var line = scrape.Split('\n').FirstOrDefault(l => l.StartsWith(series + "{", StringComparison.Ordinal)
            && l.Contains($"tenant=\"{tenant}\"", StringComparison.Ordinal) && l.Contains(extra, StringComparison.Ordinal));
        Assert.True(line is not null, $"{series} for {tenant} is not in the scrape");
        return double.Parse(line![(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_scrape_shows_the_readers_busy_and_running_time_and_the_send_queues()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        using var exporter = server.Server.Metrics.Exporter();
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        for (int i = 0; i < 50; i++)
            Assert.True(server.Tun().Inject(Packets.Framed(Packets.Numbered(Packets.Far4, client.Address, i), server.Tun().Offload)));
        for (int i = 0; i < 50; i++) Packets.Take(client.Tun, $"packet {i} did not reach the client");

        var scrape = exporter.Render();
        double busy = Sample(scrape, "isotun_tun_reader_busy_seconds_total", server.Tenant, "queue=\"0\"");
        double running = Sample(scrape, "isotun_tun_reader_running_seconds_total", server.Tenant, "queue=\"0\"");
        Assert.InRange(busy, 0, running);
        Assert.True(running > 0);
        Assert.True(Sample(scrape, "isotun_tunnel_send_queue_capacity", server.Tenant) >= 256);
        Assert.True(Sample(scrape, "isotun_tunnel_send_queue_highwater", server.Tenant) >= 1);
        Assert.InRange(Sample(scrape, "isotun_tunnel_send_queue_depth", server.Tenant), 0, 1024);
    }
}
