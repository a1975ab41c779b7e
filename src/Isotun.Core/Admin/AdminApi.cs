using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Isotun.Metrics;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State.Cluster;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Isotun.Admin;

/// <summary>
/// The admin plane of <c>isotun server</c>, on Kestrel: a unix socket (0600; whoever may open it is an operator) and,
/// optionally, TCP (loopback by default), where <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c> are open and the API
/// under <c>/api/v1/</c> needs the bearer token of <c>admin.token-file</c>. Requests are small and bounded
/// (<see cref="OperatorListener"/>: 16 KiB bodies and heads, a 10 s head deadline, 64 connections, 8 from one address
/// over TCP); nothing here holds a lock the data path needs: every
/// handler reads snapshots or calls the server's own thread-safe operations.
/// </summary>
public sealed class AdminApi : IAsyncDisposable
{
    public const string ApiPrefix = "/api/v1";

    private readonly WebApplication _app;
    private readonly PrometheusExporter _exporter;
    private readonly VpnServer _server;
    private readonly AdminToken _token;
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;

    private AdminApi(VpnServer server, AdminConfig config, ILoggerFactory logs)
    {
        _server = server;
        _exporter = server.Metrics.Exporter();
        // A short token (the loader refuses one; a caller that skips it) admits nobody: an empty one would match an empty header.
        _token = new AdminToken(config.TokenFile, logs.CreateLogger("Isotun.Admin"));
        var builder = OperatorListener.Builder();
        builder.Services.AddSingleton(logs);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.CamelCase);
        builder.WebHost.ConfigureKestrel(k =>
        {
            OperatorListener.Limit(k);
            if (config.Socket is { } socket)
            {
                if (File.Exists(socket))
                {
                    // A file that is no socket is someone's data (admin.socket mistyped as the state file, say): left alone.
                    if (Linux.Libc.IsSocket(socket) == false)
                        throw new InvalidOperationException($"admin.socket {socket} is an existing file that is not a socket; it is left as it is: give admin.socket another path");
                    // Left by a crash, unless a live server answers on it: that one's socket is not taken over.
                    if (Answers(socket)) throw new InvalidOperationException($"the admin socket {socket} is in use by a running server");
                    File.Delete(socket);
                }
                k.ListenUnixSocket(socket, o => o.Protocols = HttpProtocols.Http1);
            }
            if (config.Listen is { } tcp) k.Listen(tcp, o => OperatorListener.Http1PerSource(o));
        });
        _app = builder.Build();
        // A request naming a host it was not told of (DNS rebinding, through an operator's browser) goes no further.
        _app.Use(HostFilter.Middleware(config.Hosts, () => _server.Metrics.AdminRequest(AdminResult.WrongHost)));
        _app.Use(GuardAsync);
        Map(_app);
    }

    /// <summary>True when something accepts a connection on the unix socket at <paramref name="path"/>.</summary>
    private static bool Answers(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static async Task<AdminApi> StartAsync(VpnServer server, AdminConfig config, ILoggerFactory logs, CancellationToken ct = default)
    {
        var api = new AdminApi(server, config, logs);
        await api._app.StartAsync(ct).ConfigureAwait(false);
        if (config.Socket is { } socket) File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return api;
    }

    /// <summary>
    /// On the unix socket, whether the peer is root or the server's own user (SO_PEERCRED). The socket file's mode
    /// (0600) is the access control; this holds as well for a connection made before that mode was set (the socket
    /// exists from the bind on), or through a mode someone loosened.
    /// </summary>
    private static bool PeerIsOwner(HttpContext ctx)
    {
        if (ctx.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionSocketFeature>()?.Socket is not { } socket) return false;
        Span<byte> credentials = stackalloc byte[12]; // struct ucred: pid, uid, gid
        try
        {
            if (socket.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, credentials) < credentials.Length) return false;
        }
        catch (SocketException)
        {
            return false;
        }
        uint uid = System.Runtime.InteropServices.MemoryMarshal.Read<uint>(credentials[4..]);
        return uid == 0 || uid == (uint)Linux.Libc.geteuid();
    }

    /// <summary>
    /// Counts every request by result, and on TCP asks the API for the bearer token (compared in constant time). On the
    /// unix socket the file's mode is the access control.
    /// </summary>
    private async Task GuardAsync(HttpContext ctx, RequestDelegate next)
    {
        bool overTcp = ctx.Connection.LocalIpAddress is not null;
        if (overTcp && ctx.Request.Path.StartsWithSegments(ApiPrefix) && !Authorized(ctx.Request.Headers.Authorization.ToString()))
        {
            _server.Metrics.AdminRequest(AdminResult.Unauthorized);
            ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await ctx.Response.WriteAsJsonAsync(new ErrorView(!_token.Configured
                ? "the API is not served over TCP without admin.token-file; use the unix socket"
                : "a valid bearer token is required")).ConfigureAwait(false);
            return;
        }
        if (!overTcp && !PeerIsOwner(ctx))
        {
            _server.Metrics.AdminRequest(AdminResult.Unauthorized);
            ctx.Response.StatusCode = StatusCodes.Status403Forbidden;
            await ctx.Response.WriteAsJsonAsync(new ErrorView("the admin socket serves root and the server's own user only")).ConfigureAwait(false);
            return;
        }
        bool failed = true; // until the handler returns: one that throws (a client gone mid-body, a fault) counts as an error
        try
        {
            await next(ctx).ConfigureAwait(false);
            failed = false;
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
        {
            ctx.Response.StatusCode = e.StatusCode;
            await ctx.Response.WriteAsJsonAsync(new ErrorView(e.Message)).ConfigureAwait(false);
            failed = false;
        }
        finally
        {
            _server.Metrics.AdminRequest(failed ? AdminResult.Error : ctx.Response.StatusCode switch
            {
                < 400 => AdminResult.Ok,
                400 => AdminResult.BadRequest,
                404 => AdminResult.NotFound,
                405 => AdminResult.BadMethod,
                409 => AdminResult.Conflict,
                413 => AdminResult.TooLarge,
                _ => AdminResult.Error,
            });
        }
    }

    private bool Authorized(string header)
    {
        if (_token.Current() is not { } token || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return false;
        var given = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        return CryptographicOperations.FixedTimeEquals(given, token);
    }

    private void Map(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => _server.LocalEndpoint is null ? Results.Text("not listening yet\n", statusCode: 503) : Results.Text("ready\n"));
        app.MapGet("/metrics", () => Results.Text(_exporter.Render(), "text/plain; version=0.0.4; charset=utf-8"));
        // The dashboard: one embedded page, no outside URL; its data comes from the API (so over TCP it needs the token).
        app.MapGet("/dashboard", (HttpContext ctx) =>
        {
            ctx.Response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'";
            ctx.Response.Headers.XFrameOptions = "DENY"; // and for browsers without frame-ancestors: no page of another site frames it
            ctx.Response.Headers.XContentTypeOptions = "nosniff";
            ctx.Response.Headers["Referrer-Policy"] = "no-referrer";
            return Results.Stream(Resource("Isotun.Admin.dashboard.html"), "text/html; charset=utf-8");
        });
        app.MapGet("/", () => Results.Redirect("/dashboard"));

        var api = app.MapGroup(ApiPrefix);
        api.MapGet("/openapi.json", () => Results.Stream(OpenApi(), "application/json"));
        api.MapGet("/status", Status);
        api.MapGet("/tenants", () => _server.Authenticator.Tenants.Values.OrderBy(t => t.Name, StringComparer.Ordinal).Select(Tenant));
        api.MapGet("/sessions", async (string? tenant, string? user, string? scope, CancellationToken ct) =>
        {
            if (scope is null or "node") return Results.Ok(Sessions(tenant, user));
            if (scope != "cluster") return Results.BadRequest(new ErrorView("scope must be node or cluster"));
            if (_server.Shared is not { } shared) return Results.BadRequest(new ErrorView("this server is not a node of a cluster"));
            var (all, failed) = await ClusterSessionsAsync(shared, ct);
            return failed ?? Results.Ok(all!.Where(s => (tenant is null || s.Tenant == tenant) && (user is null || s.User == user))
                .OrderBy(s => s.Tenant, StringComparer.Ordinal).ThenBy(s => s.User, StringComparer.Ordinal).ThenBy(s => s.Since));
        });
        api.MapGet("/sessions/{id}", (string id) => Find(id) is { } s ? Results.Ok(Session(s)) : NotFound($"no session {id}"));
        // A session of this node by its full or short id; in a cluster, any node's session by its full id.
        api.MapDelete("/sessions/{id}", async (string id, CancellationToken ct) =>
        {
            if (Find(id) is { } s && _server.Kick(s.Id)) return Results.Ok(new KickResult(s.Id.ToString("N"), true));
            if (_server.Shared is not { } shared || !Guid.TryParseExact(id, "N", out var full)) return NotFound($"no session {id}");
            // Another node's: only one the cluster lists (a mistyped id is not "kicked" while the real one stays up).
            var (all, failed) = await ClusterSessionsAsync(shared, ct);
            if (failed is not null) return failed;
            if (!all!.Any(c => c.Id == full.ToString("N"))) return NotFound($"no session {id} on any node (a new session is listed within {ClusterSessions.Every.TotalSeconds:0} s)");
            _server.KickEverywhere(full);
            return Results.Ok(new KickResult(id, true));
        });
        api.MapPost("/tenants/{tenant}/users/{user}/revoke", (string tenant, string user) =>
            UserProblem(tenant, user) ?? Saved(() => Results.Ok(new RevokeResult(tenant, user, _server.RevokeUser(tenant, user)))));
        api.MapPost("/tenants/{tenant}/users/{user}/enable", (string tenant, string user) =>
            UserProblem(tenant, user) ?? Saved(() => Results.Ok(new EnableResult(tenant, user, _server.EnableUser(tenant, user)))));
        api.MapPost("/unban", UnbanAsync);
        api.MapPost("/reload", () =>
        {
            var report = _server.Reload();
            bool applied = report.Count == 0 || !report[0].StartsWith("reload ", StringComparison.Ordinal);
            return Results.Json(new ReloadResult(applied, report), statusCode: applied ? 200 : 409);
        });
    }

    private StatusView Status()
    {
        var sessions = _server.Sessions.All.ToList();
        return new StatusView(typeof(AdminApi).Assembly.GetName().Version?.ToString() ?? "0", _started, (long)(DateTimeOffset.UtcNow - _started).TotalSeconds,
            _server.LocalEndpoint?.ToString(), _server.Authenticator.Tenants.Count, sessions.Count, sessions.Count(s => s.Connection is not null),
            _server.RevokedUsers.Count, _server.Logins.BannedSources, _server.Logins.BannedUsers, _server.LocalEndpoint is not null,
            _server.Shared?.Status is { } c ? new ClusterView(c.Node, c.Connected, c.PendingWrites, c.Revision, c.LastError, _server.SharedTenantsStatus) : null,
            CookieKeys());
    }

    private CookieKeysView CookieKeys()
    {
        var ring = _server.Cookies.Ring;
        var sealing = ring.SealingKey(DateTimeOffset.UtcNow);
        return new CookieKeysView(sealing.Id, sealing.Created, ring.Keys.Count, ring.Current.Created + _server.Config.Cookie.RotateEvery);
    }

    private TenantView Tenant(TenantRuntime t) =>
        new(t.Name, t.NamespaceName, t.Pool.ToString(), t.Pool6?.ToString(), _server.Sessions.CountFor(t), t.Config.MaxSessions, t.Config.MaxSessionsPerUser,
            t.Sites.Sites.Select(SiteOf).ToList());

    private static SiteView SiteOf(Site s) =>
        new(s.Name, s.User, s.Subnets.Select(n => n.ToString()).ToList(), s.Owner?.Id.ToString("N"), s.RxBytes, s.TxBytes);

    private IEnumerable<SessionView> Sessions(string? tenant, string? user) => _server.Sessions.All
        .Where(s => (tenant is null || s.Tenant.Name == tenant) && (user is null || s.User == user))
        .OrderBy(s => s.Tenant.Name, StringComparer.Ordinal).ThenBy(s => s.User, StringComparer.Ordinal).ThenBy(s => s.Since)
        .Select(Session);

    private static SessionView Session(VpnSession s)
    {
        var (rxBytes, rxFrames, txBytes, txFrames) = s.Traffic();
        return new SessionView(s.Id.ToString("N"), s.Tenant.Name, s.User, s.Address?.ToString(), s.Address6?.ToString(), s.Source?.ToString(), s.Since,
            s.ExpiresAt, s.Connection is not null, s.LiveQueues, s.Extensions, s.ClientVersion, rxBytes, rxFrames, txBytes, txFrames,
            s.Site is { } site ? SiteOf(site) : null);
    }

    /// <summary>A session by its full id (32 hex digits) or by the 8-digit short id the logs show, when only one has it.</summary>
    private VpnSession? Find(string id)
    {
        if (Guid.TryParseExact(id, "N", out var full)) return _server.Sessions.TryGet(full);
        if (id.Length != 8) return null;
        var matches = _server.Sessions.All.Where(s => s.ShortId == id).Take(2).ToList();
        return matches.Count == 1 ? matches[0] : null;
    }

    private async Task<IResult> UnbanAsync(HttpRequest request)
    {
        UnbanRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<UnbanRequest>(request.Body, JsonOptions, request.HttpContext.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            return Results.BadRequest(new ErrorView($"malformed JSON: {e.Message}"));
        }
        if (body?.Source is { } source)
        {
            if (!IPAddress.TryParse(source, out var address)) return Results.BadRequest(new ErrorView($"not an IP address: {source}"));
            return Results.Ok(new UnbanResult(_server.Logins.UnbanSource(address)));
        }
        if (body?.User is { } user)
            // Without a tenant: the user's bans in every tenant.
            return body.Tenant is null
                ? NameProblem(user) ?? Results.Ok(new UnbanResult(_server.Logins.UnbanUserInEveryTenant(user)))
                : UserProblem(body.Tenant, user) ?? Results.Ok(new UnbanResult(_server.Logins.UnbanUser(LoginThrottle.UserKey(body.Tenant, user))));
        return Results.BadRequest(new ErrorView("give \"source\", or \"user\" (with \"tenant\")"));
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, PropertyNameCaseInsensitive = true };

    private static IResult NotFound(string message) => Results.NotFound(new ErrorView(message));

    /// <summary>Every node's sessions, or the 503 that says why not (the store cannot be reached, or did not answer in 5 s).</summary>
    private static async Task<(IReadOnlyList<ClusterSession>? All, IResult? Failed)> ClusterSessionsAsync(SharedState shared, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            return (await ClusterSessions.ListAsync(shared, deadline.Token).ConfigureAwait(false), null);
        }
        catch (Exception e) when (e is KeyValueStoreException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return (null, Results.Json(new ErrorView($"the cluster's store cannot be reached: {(e is OperationCanceledException ? "no answer within 5 s" : e.Message)}"), statusCode: 503));
        }
    }

    /// <summary>Why a tenant and user named in a request cannot be acted on (no such tenant, not a user name), or null.</summary>
    private IResult? UserProblem(string tenant, string user) =>
        !_server.Authenticator.Tenants.ContainsKey(tenant) ? NotFound($"no tenant {tenant}") : NameProblem(user);

    private static IResult? NameProblem(string user) =>
        Security.PasswordFile.IsValidUserName(user) ? null : Results.BadRequest(new ErrorView("not a user name: 1-64 characters of A-Z a-z 0-9 . _ @ -"));

    /// <summary>The answer of a change that is kept on disk; 500 with the reason when it could not be written.</summary>
    private static IResult Saved(Func<IResult> change)
    {
        try
        {
            return change();
        }
        catch (IOException e)
        {
            return Results.Json(new ErrorView(e.Message), statusCode: StatusCodes.Status500InternalServerError);
        }
    }

    private static Stream OpenApi() => Resource("Isotun.Admin.openapi.json");

    private static Stream Resource(string name) =>
        Assembly.GetExecutingAssembly().GetManifestResourceStream(name) ?? throw new InvalidOperationException($"{name} is not embedded");

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _exporter.Dispose();
    }
}
