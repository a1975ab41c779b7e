using System.Text.Json;
using System.Text.RegularExpressions;
using Isotun.Cli.Commands;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Cli;

/// <summary>Log lines go to stderr, carry a UTC date and time, and in JSON mode each line is one object.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class LoggingTests
{
    private static readonly Regex IsoUtc = new(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$");

    private static (string Out, string Error) Log(LogFormat format, bool verbose = false) => ConsoleCapture.Capture(() =>
    {
        // Disposing the factory flushes the console logger's queue.
        using var logs = Logging.Create(format, verbose);
        var log = logs.CreateLogger("isotun.test");
        log.LogInformation("tenant={Tenant} conn={Conn} login {User}: {Result}", "acme", 7, "alice", "ok");
        log.LogWarning("second line");
        log.LogDebug("only with --verbose");
    });

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void The_frameworks_request_lines_are_left_out_unless_verbose_and_its_warnings_kept(bool verbose, bool requestLines)
    {
        using var logs = Logging.Create(LogFormat.Text, verbose);
        Assert.Equal(requestLines, logs.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
        Assert.True(logs.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning));
        Assert.True(logs.CreateLogger("isotun.server").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public void Text_lines_go_to_stderr_with_a_utc_date_and_time()
    {
        var (stdout, stderr) = Log(LogFormat.Text);
        Assert.Equal("", stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        foreach (var line in lines)
        {
            var stamp = line.Split(' ', 2)[0];
            Assert.Matches(IsoUtc, stamp);
            var when = DateTimeOffset.Parse(stamp, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(DateTimeOffset.UtcNow - when, TimeSpan.Zero - TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5));
            Assert.DoesNotContain("\u001b[", line); // no colour codes when stderr is not a terminal
        }
        Assert.Contains("tenant=acme conn=7 login alice: ok", lines[0]);
        Assert.Contains("second line", lines[1]);
    }

    [Fact]
    public void Json_lines_go_to_stderr_and_each_parses_as_one_object()
    {
        var (stdout, stderr) = Log(LogFormat.Json, verbose: true);
        Assert.Equal("", stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            Assert.Matches(IsoUtc, doc.RootElement.GetProperty("Timestamp").GetString()!);
            Assert.Equal("isotun.test", doc.RootElement.GetProperty("Category").GetString());
        }
        using var first = JsonDocument.Parse(lines[0]);
        Assert.Equal("Information", first.RootElement.GetProperty("LogLevel").GetString());
        Assert.Equal("tenant=acme conn=7 login alice: ok", first.RootElement.GetProperty("Message").GetString());
        Assert.Equal("acme", first.RootElement.GetProperty("State").GetProperty("Tenant").GetString());
    }

    [Fact]
    public async Task The_log_format_option_is_global_and_refuses_unknown_formats()
    {
        using var temp = new Security.TempDirectory();
        var ok = await ConsoleCapture.RunAsync(temp.Path, null, "--log-format", "json", "config", "example");
        Assert.Equal(0, ok.ExitCode);
        var bad = await ConsoleCapture.RunAsync(temp.Path, null, "config", "example", "--log-format", "xml");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("xml", bad.Error);
    }
}
