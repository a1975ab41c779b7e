using System.Net;
using System.Text;

namespace Isotun.Metrics;

/// <summary>
/// The admin listener: GET /metrics in Prometheus text format. Loopback by default; it carries no secrets
/// but does reveal tenant names and traffic, so exposing it is an explicit configuration choice. A few requests are
/// served at once, each within a write deadline: a scraper that stops reading is cut off, and holds up no other.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    /// <summary>Requests served at once; more are answered 503.</summary>
    public const int MaxConcurrent = 4;

    private readonly HttpListener _http = new();
    private readonly PrometheusExporter _exporter = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(MaxConcurrent);

    /// <summary>How long a response may take to be written; then its connection is aborted.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public MetricsEndpoint(IPEndPoint listen)
    {
        string host = listen.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{listen.Address}]" : listen.Address.ToString();
        _http.Prefixes.Add($"http://{host}:{listen.Port}/");
        try
        {
            _http.Start();
        }
        catch (HttpListenerException e)
        {
            _http.Close();
            throw new IOException($"the metrics endpoint cannot listen on {listen}: {e.Message}", e);
        }
        _ = Task.Run(ServeAsync);
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await _http.GetContextAsync().ConfigureAwait(false); }
            catch (Exception) when (_stop.IsCancellationRequested || !_http.IsListening) { return; }
            catch (HttpListenerException) { continue; }
            if (!_slots.Wait(0))
            {
                Answer(ctx, 503);
                continue;
            }
            _ = ServeOneAsync(ctx);
        }
    }

    private async Task ServeOneAsync(HttpListenerContext ctx)
    {
        // The listener's response stream may not heed a token: the deadline aborts the connection, which ends the write.
        using var deadline = new CancellationTokenSource(WriteTimeout);
        using var abort = deadline.Token.Register(() => ctx.Response.Abort());
        try
        {
            var path = ctx.Request.Url?.AbsolutePath ?? "/";
            if (ctx.Request.HttpMethod != "GET" || (path != "/metrics" && path != "/"))
            {
                Answer(ctx, 404);
                return;
            }
            var body = Encoding.UTF8.GetBytes(_exporter.Render());
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            ctx.Response.ContentLength64 = body.Length;
            await ctx.Response.OutputStream.WriteAsync(body, deadline.Token).ConfigureAwait(false);
            ctx.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            ctx.Response.Abort();
        }
        finally
        {
            _slots.Release();
        }
    }

    private static void Answer(HttpListenerContext ctx, int status)
    {
        try
        {
            ctx.Response.StatusCode = status;
            ctx.Response.ContentLength64 = 0;
            ctx.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            ctx.Response.Abort();
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _http.Stop(); _http.Close(); } catch (ObjectDisposedException) { }
        _exporter.Dispose();
    }
}
