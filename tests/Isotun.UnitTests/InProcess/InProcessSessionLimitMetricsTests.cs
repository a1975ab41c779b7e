using Isotun.Client;
using Isotun.Metrics;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The session limits as gauges, read from a running server: each tenant's max-sessions beside the sessions it holds
/// (live or waiting for their client), and limits.max-sessions, so an alert can compare what is held with the limit.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessSessionLimitMetricsTests(InProcessPki pki)
{
    [Fact]
    public async Task The_metrics_export_each_tenants_max_sessions_and_the_sessions_it_holds_and_the_server_limit()
    {
        string tenant;
        PrometheusExporter exporter;
        await using (var server = await InProcessServer.StartAsync(pki, t => t with { MaxSessions = 7 }))
        {
            exporter = server.Server.Metrics.Exporter();
            tenant = server.Tenant;
            Assert.Contains($"isotun_sessions_limit{{tenant=\"{tenant}\"}} 7\n", exporter.Render());
            Assert.Contains($"isotun_sessions_held{{tenant=\"{tenant}\"}} 0\n", exporter.Render());

            // Logins without a tunnel: the sessions wait for their client, and count against the limit all the same.
            await AuthClient.LoginAsync(server.Options(), CancellationToken.None);
            await AuthClient.LoginAsync(server.Options(), CancellationToken.None);
            var text = exporter.Render();
            Assert.Contains($"isotun_sessions_held{{tenant=\"{tenant}\"}} 2\n", text);
            Assert.Contains("# TYPE isotun_sessions_limit gauge\n", text);
            Assert.Contains("# TYPE isotun_server_sessions_limit gauge\n", text);
            Assert.Matches(@"\nisotun_server_sessions_limit \d+\n", text);
            Core.Metrics.PrometheusExporterTests.AssertValidExposition(text);

            var limits = server.Server.ReadSessionLimits();
            Assert.Equal(server.Server.Config.Limits.MaxSessions, limits.ServerMax);
            Assert.Equal([new TenantSessionLimit(tenant, 7, 2)], limits.Tenants);
        }
        // A stopped server's tenants are no longer reported.
        Assert.DoesNotContain($"tenant=\"{tenant}\"}} ", string.Join('\n', exporter.Render().Split('\n').Where(l => l.StartsWith("isotun_sessions_", StringComparison.Ordinal))));
        exporter.Dispose();
    }
}
