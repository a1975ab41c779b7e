using System.Text;
using Isotun.Security;
using Isotun.Server.Configuration;
using Microsoft.Extensions.Logging;

namespace Isotun.Admin;

/// <summary>
/// The bearer token of the admin API over TCP, as its file holds it now: read again whenever the file changes (its
/// <see cref="FileStamp"/>: a copy that keeps the old time counts too), so a token replaced with <c>isotun admin token --force</c> is the only one that opens the API from
/// the next request on, without a reload or a restart. A file that no longer holds a usable token (too short, open to
/// others, gone or unreadable) admits nobody until it does, and says why in the log once per change.
/// </summary>
internal sealed class AdminToken(string? path, ILogger log)
{
    private readonly Lock _lock = new();
    private FileStamp? _stamp;
    private bool _read; // once read, a file that stays gone (no stamp) is not read, nor logged, again
    private byte[]? _token;

    /// <summary>Whether a token file is configured at all (without one, the API is not served over TCP).</summary>
    public bool Configured => path is not null;

    /// <summary>The token's bytes, or null when there is none to accept.</summary>
    public byte[]? Current()
    {
        if (path is null) return null;
        var stamp = FileStamp.Of(path);
        lock (_lock)
        {
            if (_read && _stamp == stamp) return _token;
            (_stamp, _read) = (stamp, true);
            _token = Read(out var problem);
            if (problem is not null) log.LogError("admin: the API over TCP admits nobody until {File} holds a usable token: {Problem}", path, problem);
            return _token;
        }
    }

    private byte[]? Read(out string? problem)
    {
        problem = null;
        try
        {
            if (!File.Exists(path)) problem = "the file is gone";
            else if (SecretFile.OpenToOthers(path!)) problem = "it is readable by group or others (chmod 600)";
            else if (AdminConfig.ReadToken(path!) is { Length: >= AdminConfig.MinTokenLength } token) return Encoding.UTF8.GetBytes(token);
            else problem = $"its token is shorter than {AdminConfig.MinTokenLength} characters";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = e.Message;
        }
        return null;
    }
}
