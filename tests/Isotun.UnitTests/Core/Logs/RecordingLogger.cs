using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Logs;

/// <summary>A logger factory that keeps every line (level and text) for a test to read.</summary>
internal sealed class RecordingLogger : ILoggerProvider, ILogger
{
    private readonly List<(LogLevel Level, string Text)> _lines = [];

    public ILoggerFactory Factory => LoggerFactory.Create(b => b.AddProvider(this).SetMinimumLevel(LogLevel.Trace));

    public IReadOnlyList<(LogLevel Level, string Text)> Lines
    {
        get { lock (_lines) return _lines.ToArray(); }
    }

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add((logLevel, formatter(state, exception)));
    }

    public bool IsEnabled(LogLevel logLevel) => true;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public ILogger CreateLogger(string categoryName) => this;

    public void Dispose()
    {
    }
}
