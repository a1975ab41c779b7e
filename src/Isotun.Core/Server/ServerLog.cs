using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>Server log events. Never pass keys, passwords, cookies or tokens here.</summary>
internal static partial class ServerLog
{
    [LoggerMessage(1, LogLevel.Information, "listening on {Endpoint}; tenants: {Tenants}")]
    public static partial void Listening(ILogger logger, System.Net.IPEndPoint endpoint, string tenants);

    [LoggerMessage(2, LogLevel.Information, "server certificate {Path}, {Pin}")]
    public static partial void ServerCertificate(ILogger logger, string path, string pin);

    [LoggerMessage(54, LogLevel.Information, "server certificate {Path} renewed, {Pin}: new handshakes present it")]
    public static partial void ServerCertificateRenewed(ILogger logger, string path, string pin);

    [LoggerMessage(57, LogLevel.Warning, "server certificate {Path} {Problem}")]
    public static partial void CertificateValidity(ILogger logger, string path, string problem);

    [LoggerMessage(55, LogLevel.Warning, "the renewed certificate's TLS does not seal tickets with the kept ticket key ({Reason}): tickets it gives resume on this run only")]
    public static partial void RenewedTicketKeyNotUsed(ILogger logger, string reason);

    [LoggerMessage(4, LogLevel.Information, "TLS session tickets sealed with the key in {Source}: clients resume after a restart and on every server with the same key")]
    public static partial void TicketKey(ILogger logger, string source);

    [LoggerMessage(5, LogLevel.Warning, "the ticket key in {Source} is not used ({Reason}): session tickets are sealed with a key of this run only")]
    public static partial void TicketKeyNotUsed(ILogger logger, string source, string reason);

    [LoggerMessage(3, LogLevel.Information, "metrics on http://{Endpoint}/metrics")]
    public static partial void Metrics(ILogger logger, System.Net.IPEndPoint endpoint);

    /// <summary>The level comes from <see cref="ServerConnection"/>'s throttle: Information, or Debug under a flood.</summary>
    [LoggerMessage(EventId = 10, Message = "conn={Conn} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, LogLevel level, long conn, string reason);

    [LoggerMessage(11, LogLevel.Information, "{Count} more line(s) of kind '{Kind}' were logged at Debug only (a flood; the metrics count every one)")]
    public static partial void Suppressed(ILogger logger, long count, string kind);

    [LoggerMessage(EventId = 20, Message = "tenant={Tenant} conn={Conn} login {User}: {Result}")]
    public static partial void Login(ILogger logger, LogLevel level, string tenant, long conn, string user, string result);

    [LoggerMessage(21, LogLevel.Information, "tenant={Tenant} session={Session} conn={Conn} tunnel up for {User} at {Address} (mtu {Mtu}, extensions: {Extensions}) from {Peer}")]
    public static partial void TunnelUp(ILogger logger, string tenant, string session, long conn, string user, string address, int mtu, string extensions, string peer);

    [LoggerMessage(24, LogLevel.Information, "tenant={Tenant} session={Session} conn={Conn} queue {Queue} of {Queues} joined from {Peer}")]
    public static partial void QueueUp(ILogger logger, string tenant, string session, long conn, int queue, int queues, string peer);

    [LoggerMessage(22, LogLevel.Information, "tenant={Tenant} session={Session} conn={Conn} tunnel down: {Reason}")]
    public static partial void TunnelDown(ILogger logger, string tenant, string session, long conn, string reason);

    [LoggerMessage(23, LogLevel.Information, "tenant={Tenant} session={Session} ended: {Reason}")]
    public static partial void SessionEnded(ILogger logger, string tenant, string session, string reason);

    [LoggerMessage(30, LogLevel.Warning, "tenant={Tenant} session={Session} conn={Conn} bad frame: {Reason}")]
    public static partial void BadFrame(ILogger logger, string tenant, string session, long conn, string reason);

    [LoggerMessage(40, LogLevel.Error, "tenant={Tenant} TUN {Device} failed: {Error}")]
    public static partial void TunFailed(ILogger logger, string tenant, string device, string error);

    [LoggerMessage(41, LogLevel.Warning, "{Listener} listener refused {Peer}: {Reason} (and {Suppressed} more not logged)")]
    public static partial void ListenerRefused(ILogger logger, string listener, string peer, string reason, long suppressed);

    [LoggerMessage(42, LogLevel.Error, "{Listener} listener cannot accept: {Error}; backing off {BackoffMs} ms (and {Suppressed} more not logged)")]
    public static partial void AcceptFailed(ILogger logger, string listener, string error, int backoffMs, long suppressed);

    [LoggerMessage(43, LogLevel.Warning, "tenant={Tenant} {Scope} {Who} banned from logging in for {Seconds} s after repeated failures")]
    public static partial void LoginBanned(ILogger logger, string tenant, string scope, string who, int seconds);

    [LoggerMessage(44, LogLevel.Information, "stopping: no new connections; {Tunnels} tunnel(s) closed so their clients reconnect with their cookies (sessions stay valid); up to {Seconds} s to drain")]
    public static partial void Stopping(ILogger logger, int tunnels, int seconds);

    [LoggerMessage(45, LogLevel.Information, "tenant={Tenant} site {Site} routed to session {Session}")]
    public static partial void SiteRouted(ILogger logger, string tenant, string site, string session);

    [LoggerMessage(46, LogLevel.Information, "tenant={Tenant} site {Site} unrouted: its user has no live tunnel")]
    public static partial void SiteUnrouted(ILogger logger, string tenant, string site);

    [LoggerMessage(47, LogLevel.Error, "tenant={Tenant} site routes: {Failure}")]
    public static partial void SiteRouteFailed(ILogger logger, string tenant, string failure);

    [LoggerMessage(48, LogLevel.Warning, "tenant={Tenant} uplink announcement failed: {Error}")]
    public static partial void AnnounceFailed(ILogger logger, string tenant, string error);

    [LoggerMessage(49, LogLevel.Information, "tenant={Tenant} pools changed from {Before} to {After}")]
    public static partial void PoolChanged(ILogger logger, string tenant, string before, string after);

    [LoggerMessage(50, LogLevel.Error, "tenant={Tenant} new pool: {Failure}")]
    public static partial void PoolReaddressFailed(ILogger logger, string tenant, string failure);

    [LoggerMessage(51, LogLevel.Warning, "tenant={Tenant} client-crl {Path} is past its next update ({NextUpdate:O}): what it lists stays refused, but its CA may have revoked more since; put a fresh CRL there and reload")]
    public static partial void CrlStale(ILogger logger, string tenant, string path, DateTimeOffset nextUpdate);

    [LoggerMessage(52, LogLevel.Information, "tenant={Tenant} password file {Path} changed: read again, {Users} user(s)")]
    public static partial void PasswordsReread(ILogger logger, string tenant, string path, int users);

    [LoggerMessage(53, LogLevel.Error, "tenant={Tenant} password file changed but not taken, the last good one stays in force: {Error}")]
    public static partial void PasswordsRefused(ILogger logger, string tenant, string error);

    [LoggerMessage(56, LogLevel.Warning, "tenant={Tenant} password file {Path} is gone: the users read last stay in force until it is back")]
    public static partial void PasswordsGone(ILogger logger, string tenant, string path);
}
