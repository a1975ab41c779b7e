using Microsoft.Extensions.Logging;

namespace Isotun.Gateway;

/// <summary>Gateway log events. Peer-controlled text (server names) is logged only after the ClientHello reader validated it.</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(1, LogLevel.Information, "gateway listening on {Endpoint}: {Routes} route(s){Default}")]
    public static partial void Listening(ILogger logger, System.Net.IPEndPoint endpoint, int routes, string @default);

    [LoggerMessage(2, LogLevel.Information, "metrics on http://{Endpoint}/metrics")]
    public static partial void Metrics(ILogger logger, System.Net.IPEndPoint endpoint);

    [LoggerMessage(3, LogLevel.Information, "route {Route}: {Sni} -> {Mode} {Backend}{Proxy}")]
    public static partial void Route(ILogger logger, string route, string sni, string mode, string backend, string proxy);

    [LoggerMessage(4, LogLevel.Information, "TLS session tickets of terminating routes sealed with the key in {Path}: clients resume after a restart or reload, and on every gateway with the same file")]
    public static partial void TicketKey(ILogger logger, string path);

    [LoggerMessage(5, LogLevel.Warning, "ticket-key-file {Path} not used ({Reason}): session tickets are sealed with a key of this configuration only")]
    public static partial void TicketKeyNotUsed(ILogger logger, string path, string reason);

    [LoggerMessage(10, LogLevel.Information, "reloaded {Path}: {Routes} route(s); established connections keep their route")]
    public static partial void Reloaded(ILogger logger, string path, int routes);

    [LoggerMessage(11, LogLevel.Error, "reload of {Path} refused ({Count} error(s)); the previous configuration stays live")]
    public static partial void ReloadRefused(ILogger logger, string path, int count);

    [LoggerMessage(12, LogLevel.Error, "  {Path}: {Message}")]
    public static partial void ReloadError(ILogger logger, string path, string message);

    [LoggerMessage(20, LogLevel.Debug, "conn={Conn} from {Remote}: {Outcome}")]
    public static partial void Outcome(ILogger logger, long conn, string remote, string outcome);

    [LoggerMessage(21, LogLevel.Warning, "conn={Conn} from {Remote} closed: {Reason} ({Suppressed} similar suppressed)")]
    public static partial void Refused(ILogger logger, long conn, string remote, string reason, long suppressed);

    [LoggerMessage(25, LogLevel.Warning, "refused {Remote} at accept: {Reason} ({Suppressed} similar suppressed)")]
    public static partial void RefusedAtAccept(ILogger logger, string remote, string reason, long suppressed);

    [LoggerMessage(26, LogLevel.Error, "cannot accept: {Error}; backing off {BackoffMs} ms ({Suppressed} similar suppressed)")]
    public static partial void AcceptFailed(ILogger logger, string error, int backoffMs, long suppressed);

    [LoggerMessage(22, LogLevel.Warning, "source {Remote} banned for {Seconds} s after repeated failures ({Suppressed} similar suppressed)")]
    public static partial void Banned(ILogger logger, string remote, int seconds, long suppressed);

    [LoggerMessage(23, LogLevel.Warning, "route {Route}: backend {Backend} unreachable: {Error}")]
    public static partial void BackendFailed(ILogger logger, string route, System.Net.IPEndPoint backend, string error);

    [LoggerMessage(24, LogLevel.Debug, "conn={Conn} route {Route} ({Mode}) for {Remote}, sni {Sni}")]
    public static partial void Forwarding(ILogger logger, long conn, string route, string mode, System.Net.IPEndPoint remote, string sni);

    [LoggerMessage(30, LogLevel.Warning, "route {Route}: backend {Backend} down ({Why}): its clients go to the route's other backends")]
    public static partial void BackendDown(ILogger logger, string route, System.Net.IPEndPoint backend, string why);

    [LoggerMessage(31, LogLevel.Information, "route {Route}: backend {Backend} up again")]
    public static partial void BackendUp(ILogger logger, string route, System.Net.IPEndPoint backend);

    [LoggerMessage(32, LogLevel.Warning, "route {Route}: certificate {Path} {Problem}")]
    public static partial void CertificateProblem(ILogger logger, string route, string path, string problem);
}
