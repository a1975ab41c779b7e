using Microsoft.Extensions.Logging;

namespace Isotun.Client;

/// <summary>Client log events. The cookie and the password never go here.</summary>
internal static partial class Log
{
    [LoggerMessage(11, LogLevel.Information, "{Queues} queues up (TLS connections joined to the session)")]
    public static partial void QueuesUp(ILogger logger, int queues);

    [LoggerMessage(12, LogLevel.Warning, "queue {Queue} not joined: {Error}; going on with fewer and trying again")]
    public static partial void QueueFailed(ILogger logger, int queue, string error);

    [LoggerMessage(13, LogLevel.Warning, "queue {Queue} lost ({Reason}); going on with {Left} and joining it again")]
    public static partial void QueueLost(ILogger logger, int queue, string reason, int left);

    [LoggerMessage(14, LogLevel.Information, "queue {Queue} joined again; {Queues} queues up")]
    public static partial void QueueRejoined(ILogger logger, int queue, int queues);

    [LoggerMessage(15, LogLevel.Warning, "stopped, and could not log off ({Error}): the server keeps the session until its cookie expires")]
    public static partial void LogOffFailed(ILogger logger, string error);

    [LoggerMessage(1, LogLevel.Information, "logged in to {Host}")]
    public static partial void LoggedIn(ILogger logger, string host);

    [LoggerMessage(2, LogLevel.Information, "connected: address {Address}, mtu {Mtu}, routes [{Routes}], dns [{Dns}]")]
    public static partial void Connected(ILogger logger, string address, int mtu, string routes, string dns);

    [LoggerMessage(3, LogLevel.Information, "reconnected with the same address {Address}; {Dropped} packets from the TUN were dropped while disconnected")]
    public static partial void Reconnected(ILogger logger, string address, long dropped);

    [LoggerMessage(4, LogLevel.Warning, "connection lost ({Reason}); reconnecting with the session cookie")]
    public static partial void ConnectionLost(ILogger logger, string reason);

    [LoggerMessage(5, LogLevel.Warning, "reconnect failed: {Error}; retrying in {Seconds} s")]
    public static partial void ReconnectFailed(ILogger logger, string error, double seconds);

    [LoggerMessage(6, LogLevel.Warning, "no data from the server for {Seconds} s: dead peer")]
    public static partial void DeadPeer(ILogger logger, long seconds);

    [LoggerMessage(7, LogLevel.Information, "disconnected (session logged off)")]
    public static partial void Disconnected(ILogger logger);

    [LoggerMessage(8, LogLevel.Warning, "server ended the session: {Reason}")]
    public static partial void ServerEnded(ILogger logger, string reason);

    [LoggerMessage(9, LogLevel.Error, "bad frame from the server: {Reason}")]
    public static partial void BadFrame(ILogger logger, string reason);

    [LoggerMessage(10, LogLevel.Error, "TUN failed: {Error}")]
    public static partial void TunFailed(ILogger logger, string error);

    [LoggerMessage(16, LogLevel.Warning, "the server's MTU changed from {Before} to {After}: the TUN takes the new one")]
    public static partial void MtuChanged(ILogger logger, int before, int after);
}
