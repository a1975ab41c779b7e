using Isotun.Server;
using Isotun.State;
using Isotun.UnitTests.Core.Logs;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A server made but never started, whose connections a test serves by hand (<see cref="ServerConnection"/>), with
/// every log line recorded. Its files live in a temporary directory, removed on dispose.
/// </summary>
internal sealed class RecordedServer : IAsyncDisposable
{
    private readonly TempDirectory? _temp;
    private readonly TempDirectory _files;
    private readonly ILoggerFactory _logs;

    /// <summary>A server of its own temporary directory, or of <paramref name="files"/> (the caller's, kept on
    /// dispose: a second server there is the first one restarted), with <paramref name="tls"/> added to its tls section.</summary>
    public RecordedServer(TempDirectory? files = null, string tls = "")
    {
        _files = files ?? (_temp = new TempDirectory());
        _logs = Recording.Factory;
        Server = new VpnServer(FirstStartTests.Config(_files, tls), _logs, new MemoryStateStore());
        Log = _logs.CreateLogger("isotun.server");
    }

    public RecordingLogger Recording { get; } = new();

    public VpnServer Server { get; }

    /// <summary>The logger to hand the connections.</summary>
    public ILogger Log { get; }

    /// <summary>A path in the server's temporary directory.</summary>
    public string File(string name) => _files.File(name);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _logs.Dispose();
        _temp?.Dispose();
    }
}
