using Microsoft.Extensions.Logging;

namespace Isotun.Cli.Commands;

internal static class Logging
{
    public static ILoggerFactory Create(bool verbose) => LoggerFactory.Create(b => b
        .AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        })
        .SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information));
}
