using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Config;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Routing;
using Isotun.Metrics;
using Isotun.Pki;
using Isotun.Security;
using Isotun.Transport;

namespace Isotun.Gateway;

/// <summary>A route ready to serve: its config plus, for terminating routes, the loaded certificate and client CAs.</summary>
public sealed class RouteRuntime
{
    private RouteRuntime(GatewayRoute route, SslServerAuthenticationOptions? tls, X509Certificate2Collection? clientCas, RevocationList? crl = null)
    {
        Route = route;
        Tls = tls;
        ClientCas = clientCas;
        Crl = crl ?? RevocationList.Empty;
        Mode = route.Mode == RouteMode.Passthrough ? ConnectionMode.Passthrough : ConnectionMode.Terminate;
        Backends = new BackendPool(route.Backends) { ProbeSaysLocal = route.ProxyProtocol };
    }

    /// <summary>The route's backends and their health.</summary>
    public BackendPool Backends { get; }

    public GatewayRoute Route { get; }
    public SslServerAuthenticationOptions? Tls { get; }
    public X509Certificate2Collection? ClientCas { get; }

    /// <summary>The route's client CRL (read again at each reload, as the whole route is); empty without one.</summary>
    public RevocationList Crl { get; }

    public ConnectionMode Mode { get; }
    public string Name => Route.Name;

    internal static RouteRuntime Build(GatewayRoute route, List<ConfigError> errors)
    {
        if (route.Terminate is not { } t) return new RouteRuntime(route, null, null);
        try
        {
            var cert = PemLoader.LoadCertificateWithKey(t.Certificate, t.Key);
            X509Certificate2Collection? cas = t.ClientCa is { } ca ? PemLoader.LoadBundle(ca) : null;
            var crl = t.ClientCrl is { } crlPath ? RevocationList.Load(crlPath) : null;
            var tls = new SslServerAuthenticationOptions
            {
                ServerCertificateContext = PemLoader.ServerContext(cert, t.Certificate),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ClientCertificateRequired = cas is not null,
                // The chain is checked against this route's CA after the handshake, so a client without a certificate
                // can still reach a backend that accepts passwords (unless the route requires a certificate).
                RemoteCertificateValidationCallback = static (_, _, _, _) => true,
                CertificateChainPolicy = ClientCertificateCheck.HandshakePolicy(),
                AllowRenegotiation = false,
            };
            return new RouteRuntime(route, tls, cas, crl);
        }
        catch (PkiException e)
        {
            errors.Add(new ConfigError($"{route.Path}.terminate.certificate", e.Message));
            return new RouteRuntime(route, null, null);
        }
    }

    /// <summary>True when <paramref name="certificate"/> chains to this route's client CA for client authentication and its CRL does not list it.</summary>
    public bool Verify(X509Certificate2 certificate) =>
        ClientCas is not null && ClientCertificateCheck.ChainsTo(certificate, ClientCas) && !Crl.IsRevoked(certificate.SerialNumber);
}

/// <summary>A whole configuration ready to serve; immutable, swapped as one on reload.</summary>
public sealed class GatewayRuntime
{
    private GatewayRuntime(GatewayConfig config, SniRouter<RouteRuntime> router, IReadOnlyList<RouteRuntime> routes)
    {
        Config = config;
        Router = router;
        Routes = routes;
    }

    /// <summary>With <see cref="GatewayConfig.TicketKeyFile"/>: null when every terminating route seals its session
    /// tickets with the file's key, else why not. Without it: null.</summary>
    public string? TicketKeyProblem { get; private set; }

    /// <summary>Every route, the default one included.</summary>
    public IReadOnlyList<RouteRuntime> Routes { get; }

    public GatewayConfig Config { get; }
    public SniRouter<RouteRuntime> Router { get; }

    public static GatewayRuntime? Build(GatewayConfig config, out List<ConfigError> errors)
    {
        errors = [];
        byte[]? ticketKey = null;
        if (config.TicketKeyFile is { } keyFile)
        {
            try
            {
                ticketKey = TicketKeyFile.LoadOrCreate(keyFile);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                errors.Add(new ConfigError("ticket-key-file", e.Message));
            }
        }
        var routes = new List<(string, RouteRuntime)>();
        foreach (var r in config.Routes) routes.Add((r.Sni!, RouteRuntime.Build(r, errors)));
        var fallback = config.Default is { } d ? RouteRuntime.Build(d, errors) : null;
        if (errors.Count > 0) return null;
        var runtime = new GatewayRuntime(config, new SniRouter<RouteRuntime>(routes, fallback), [.. routes.Select(r => r.Item2), .. fallback is null ? [] : new[] { fallback }]);
        if (ticketKey is not null) runtime.TicketKeyProblem = UseTicketKey(runtime.Routes, ticketKey);
        return runtime;
    }

    /// <summary>Seals each terminating route's session tickets with <paramref name="key"/> before the route serves, a
    /// session resuming only on its own route; null, or why not for the routes that could not take it (every route is
    /// tried: one that fails leaves the others with the key).</summary>
    private static string? UseTicketKey(IEnumerable<RouteRuntime> routes, byte[] key)
    {
        var problems = new List<string>();
        foreach (var route in routes)
        {
            if (route.Tls is not { } tls) continue;
            try
            {
                // Synchronous: a configuration is built (at start and on reload) before it serves; this is one
                // handshake with ourselves over a local socket pair per terminating route.
                if (!NativeTls.PrimeTicketKeyAsync(tls, key, route.Name).GetAwaiter().GetResult())
                    return "this runtime's TLS gives no way to set it";
            }
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException or OperationCanceledException)
            {
                problems.Add($"route {route.Name}: {e.Message}");
            }
        }
        return problems.Count == 0 ? null : string.Join("; ", problems) + " (the other routes use the key)";
    }
}
