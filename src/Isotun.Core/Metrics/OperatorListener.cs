using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Isotun.Metrics;

/// <summary>
/// What every Kestrel listener of the operator's plane has (the server's admin API, the gateway's metrics): small
/// bounded requests, a deadline on the request head (Kestrel's, which also holds against a head sent a byte at a time),
/// Kestrel's minimum data rates on bodies and answers, a cap on connections, and a cap per source address, so one peer
/// that opens connections and sends nothing cannot shut out the scrapers and operators.
/// </summary>
public static class OperatorListener
{
    /// <summary>Request bodies and heads are at most this.</summary>
    public const int MaxRequest = 16 * 1024;

    /// <summary>Connections at once, in all.</summary>
    public const int MaxConnections = 64;

    /// <summary>Connections at once from one address.</summary>
    public const int PerSource = 8;

    /// <summary>
    /// A web application made of the parts these listeners use (Kestrel, routing) and nothing read from outside the
    /// config: no appsettings.json from the working directory (nor a watch over it, which from `/` watches the whole
    /// file system), no environment variables. Either could otherwise add Kestrel endpoints the config never named
    /// (<c>Kestrel__Endpoints__…</c>), open on every address and without the per-source cap, or turn on the developer
    /// exception page.
    /// </summary>
    public static Microsoft.AspNetCore.Builder.WebApplicationBuilder Builder()
    {
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateEmptyBuilder(new Microsoft.AspNetCore.Builder.WebApplicationOptions { Args = [] });
        Microsoft.AspNetCore.Hosting.WebHostBuilderKestrelExtensions.UseKestrelCore(builder.WebHost);
        Microsoft.Extensions.DependencyInjection.RoutingServiceCollectionExtensions.AddRoutingCore(builder.Services);
        return builder;
    }

    /// <summary>The limits, for <c>ConfigureKestrel</c>.</summary>
    public static void Limit(KestrelServerOptions k)
    {
        k.AddServerHeader = false;
        k.Limits.MaxRequestBodySize = MaxRequest;
        k.Limits.MaxRequestHeadersTotalSize = MaxRequest;
        k.Limits.MaxRequestLineSize = 4096;
        k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
        k.Limits.MaxConcurrentConnections = MaxConnections;
    }

    /// <summary>HTTP/1.1 only, and at most <paramref name="perSource"/> connections at once from one address (an IPv6 /64) over TCP, loopback aside.</summary>
    /// <param name="capLoopback">Cap loopback peers too (tests, whose peers are all on loopback).</param>
    public static void Http1PerSource(ListenOptions listen, int perSource = PerSource, bool capLoopback = false)
    {
        listen.Protocols = HttpProtocols.Http1;
        var open = new ConcurrentDictionary<IPAddress, int>();
        listen.Use(next => async connection =>
        {
            // Loopback is not capped per source: every local peer (a browser with the dashboard in two tabs, a local
            // Prometheus, the CLI) is the same address there, and the cap would set them against each other; the cap
            // on all connections still holds.
            if (connection.RemoteEndPoint is not IPEndPoint { Address: var address } || (!capLoopback && IPAddress.IsLoopback(address)))
            {
                await next(connection).ConfigureAwait(false);
                return;
            }
            var source = Transport.Listening.SourceKey.Of(address); // an IPv6 peer has its /64
            try
            {
                // Past the cap the connection ends here, before a byte of HTTP is read.
                if (open.AddOrUpdate(source, 1, static (_, n) => n + 1) <= perSource) await next(connection).ConfigureAwait(false);
            }
            finally
            {
                Leave(open, source);
            }
        });
    }

    private static void Leave(ConcurrentDictionary<IPAddress, int> open, IPAddress source)
    {
        while (open.TryGetValue(source, out int n))
        {
            if (n <= 1 ? open.TryRemove(KeyValuePair.Create(source, n)) : open.TryUpdate(source, n - 1, n)) return;
        }
    }
}
