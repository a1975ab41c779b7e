using System.Globalization;
using Isotun.Metrics;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The crypto CPU share, measured: a tenant's traffic over real TLS gives it encrypt and decrypt seconds (sampled
/// thread CPU inside SslStream, the socket calls left out), which stay below the process's own CPU time.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessCryptoShareTests(InProcessPki pki)
{
    private static double Sample(string scrape, string series, params string[] labels) =>
        scrape.Split('\n').Where(l => (l.StartsWith(series + "{", StringComparison.Ordinal) || l.StartsWith(series + " ", StringComparison.Ordinal))
                && labels.All(x => l.Contains(x, StringComparison.Ordinal)))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    [Fact]
    public async Task Traffic_both_ways_gives_the_tenant_encrypt_and_decrypt_seconds_below_the_process_cpu()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        using var exporter = server.Server.Metrics.Exporter();
        await using var client = await InProcessClient.ConnectAsync(server, server.Options() with { Extensions = false });
        var payload = new byte[1300];
        for (int round = 0; round < 10; round++) // in rounds: the memory TUNs hold a bounded number of packets
        {
            for (int i = 0; i < 200; i++)
            {
                client.Send(Packets.Udp(client.Address, Packets.Far4, 40000, 9, payload));
                while (!server.Tun().Inject(Packets.Framed(Packets.Udp(Packets.Far4, client.Address, 9, 40000, payload), server.Tun().Offload))) await Task.Delay(1);
            }
            for (int i = 0; i < 200; i++) Packets.Take(server.Tun(), $"upload packet {i} of round {round} did not arrive");
            for (int i = 0; i < 200; i++) client.Receive($"download packet {i} of round {round} did not arrive");
        }

        var scrape = exporter.Render();
        double encrypt = Sample(scrape, "isotun_tls_crypto_seconds_total", $"tenant=\"{server.Tenant}\"", "direction=\"encrypt\"");
        double decrypt = Sample(scrape, "isotun_tls_crypto_seconds_total", $"tenant=\"{server.Tenant}\"", "direction=\"decrypt\"");
        double process = Sample(scrape, "process_cpu_seconds_total");
        Assert.True(encrypt > 0, "no encryption was measured:\n" + scrape);
        Assert.True(decrypt > 0, "no decryption was measured:\n" + scrape);
        Assert.True(encrypt + decrypt < process, $"crypto {encrypt + decrypt} s is not below the process's {process} s");
    }
}
