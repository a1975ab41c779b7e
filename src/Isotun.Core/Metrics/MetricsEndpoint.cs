using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Isotun.Metrics;

/// <summary>
/// The gateway's admin listener: GET /metrics in Prometheus text format, on Kestrel with the limits of every operator
/// listener (<see cref="OperatorListener"/>: a head deadline, a cap per source). Loopback by default; it carries no
/// secrets but does reveal tenant names and traffic, so exposing it is an explicit configuration choice. A few
/// requests are served at once, each within a write deadline: a scraper that stops reading is cut off, and holds up
/// no other.
/// </summary>
public sealed class MetricsEndpoint : IDisposable, IAsyncDisposable
{
    /// <summary>Requests served at once; more are answered 503.</summary>
    public const int MaxConcurrent = 4;

    private readonly WebApplication _app;
    private readonly PrometheusExporter _exporter = new();
    private readonly SemaphoreSlim _slots = new(MaxConcurrent);
    private int _disposed;

    /// <summary>How long a response may take to be written; then its connection is aborted.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <exception cref="IOException">The address cannot be listened on (in use, not this host's); the message names it.</exception>
    /// <param name="hosts">Host names a request may name besides IP addresses and localhost (<see cref="HostFilter"/>).</param>
    public MetricsEndpoint(IPEndPoint listen, IReadOnlyCollection<string>? hosts = null) : this(listen, hosts, capLoopback: false)
    {
    }

    /// <param name="capLoopback">Caps loopback peers per address too (<see cref="OperatorListener.Http1PerSource"/>), for tests.</param>
    internal MetricsEndpoint(IPEndPoint listen, IReadOnlyCollection<string>? hosts, bool capLoopback)
    {
        var builder = OperatorListener.Builder();
        builder.WebHost.ConfigureKestrel(k =>
        {
            OperatorListener.Limit(k);
            k.Listen(listen, o => OperatorListener.Http1PerSource(o, capLoopback: capLoopback));
        });
        _app = builder.Build();
        _app.Use(HostFilter.Middleware(hosts ?? []));
        _app.MapGet("/metrics", ServeAsync);
        _app.MapGet("/", ServeAsync);
        try
        {
            _app.StartAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            // Kestrel wraps "address in use" as an IOException, and lets "address not available" or "permission
            // denied" out as they are: either is this endpoint's failure to listen, named.
            _app.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw new IOException($"the metrics endpoint cannot listen on {listen}: {e.Message}", e);
        }
    }

    private async Task ServeAsync(HttpContext ctx)
    {
        if (!_slots.Wait(0))
        {
            ctx.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }
        try
        {
            // The deadline aborts the connection, which ends the write however far it got.
            using var deadline = new CancellationTokenSource(WriteTimeout);
            using var abort = deadline.Token.Register(static c => ((HttpContext)c!).Abort(), ctx);
            var body = Encoding.UTF8.GetBytes(_exporter.Render());
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            ctx.Response.ContentLength = body.Length;
            await ctx.Response.Body.WriteAsync(body, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            ctx.Abort();
        }
        finally
        {
            _slots.Release();
        }
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await _app.StopAsync(quick.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await _app.DisposeAsync().ConfigureAwait(false);
        _exporter.Dispose();
    }
}
