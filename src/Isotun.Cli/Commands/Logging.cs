using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Isotun.Cli.Commands;

public enum LogFormat { Text, Json }

/// <summary>
/// Logs of the long-running verbs (server, gateway, connect): stderr only, so stdout stays for a command's output and
/// journald gets every line; UTC ISO-8601 timestamps with the date; one line per event, as text or as JSON objects.
/// </summary>
public static class Logging
{
    /// <summary>UTC, with the date and milliseconds: 2026-12-05T16:30:01.123Z.</summary>
    public const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";

    /// <summary>The global <c>--log-format text|json</c> option (every verb accepts it).</summary>
    public static readonly Option<string> Format = CreateFormatOption();

    private static Option<string> CreateFormatOption()
    {
        var option = new Option<string>("--log-format")
        {
            Description = "Log lines on stderr as text, or as one JSON object per line",
            HelpName = "text|json",
            DefaultValueFactory = _ => "text",
            Recursive = true,
        };
        option.AcceptOnlyFromAmong("text", "json");
        return option;
    }

    public static ILoggerFactory Create(ParseResult parse, bool verbose) =>
        Create(parse.GetValue(Format) == "json" ? LogFormat.Json : LogFormat.Text, verbose);

    public static ILoggerFactory Create(LogFormat format, bool verbose) => LoggerFactory.Create(b =>
    {
        b.AddConsole(o =>
        {
            o.FormatterName = format == LogFormat.Json ? ConsoleFormatterNames.Json : ConsoleFormatterNames.Simple;
            o.LogToStandardErrorThreshold = LogLevel.Trace; // every level to stderr
        });
        if (format == LogFormat.Json)
            b.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = TimestampFormat.TrimEnd();
                o.IncludeScopes = false;
                o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
            });
        else
            b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = TimestampFormat;
                // Colours only on a terminal: journald and log files get plain text.
                o.ColorBehavior = Console.IsErrorRedirected ? LoggerColorBehavior.Disabled : LoggerColorBehavior.Enabled;
            });
        b.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
        // ASP.NET Core (the admin API) logs each request at Information, several lines a scrape: only its warnings
        // and errors, unless --verbose.
        if (!verbose) b.AddFilter("Microsoft", LogLevel.Warning);
        // The admin API's host logs a failed start (a port or socket in use) with its whole stack trace, then the
        // command prints the reason in one line: only that line, unless --verbose.
        if (!verbose) b.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
    });
}
