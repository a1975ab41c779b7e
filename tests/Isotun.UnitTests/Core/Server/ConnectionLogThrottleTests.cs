using Isotun.Server;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>A flood of refused connections is logged at Information only a few times per period; the rest go to Debug.</summary>
public sealed class ConnectionLogThrottleTests
{
    [Fact]
    public async Task A_flood_of_closes_keeps_only_a_few_lines_at_information()
    {
        await using var recorded = new RecordedServer();
        var (server, log, recording) = (recorded.Server, recorded.Log, recorded.Recording);

        // Each connection closes at once without a request: "peer closed".
        for (int id = 1; id <= 200; id++)
            await new ServerConnection(server, id, log).RunAsync(new MemoryStream(), new PeerInfo(null, null, null), CancellationToken.None);

        var closes = recording.Lines.Where(l => l.Text.Contains(" closed: peer closed")).ToList();
        Assert.Equal(200, closes.Count);
        Assert.InRange(closes.Count(l => l.Level == LogLevel.Information), 1, 10);
        Assert.All(closes.Where(l => l.Level != LogLevel.Information), l => Assert.Equal(LogLevel.Debug, l.Level));
    }
}
