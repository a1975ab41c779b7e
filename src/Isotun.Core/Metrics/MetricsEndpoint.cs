using System.Net;
using System.Text;

namespace Isotun.Metrics;

/// <summary>
/// The admin listener: GET /metrics in Prometheus text format. Loopback by default; it carries no secrets
/// but does reveal tenant names and traffic, so exposing it is an explicit configuration choice.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    private readonly HttpListener _http = new();
    private readonly PrometheusExporter _exporter = new();
    private readonly CancellationTokenSource _stop = new();

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
            try
            {
                var path = ctx.Request.Url?.AbsolutePath ?? "/";
                if (ctx.Request.HttpMethod != "GET" || (path != "/metrics" && path != "/"))
                {
                    ctx.Response.StatusCode = 404;
                    ctx.Response.Close();
                    continue;
                }
                var body = Encoding.UTF8.GetBytes(_exporter.Render());
                ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                ctx.Response.ContentLength64 = body.Length;
                await ctx.Response.OutputStream.WriteAsync(body).ConfigureAwait(false);
                ctx.Response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        try { _http.Stop(); _http.Close(); } catch (ObjectDisposedException) { }
        _exporter.Dispose();
    }
}
