using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Config;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Routing;
using Isotun.Metrics;
using Isotun.Pki;

namespace Isotun.Gateway;

/// <summary>A route ready to serve: its config plus, for terminating routes, the loaded certificate and client CAs.</summary>
public sealed class RouteRuntime
{
    private RouteRuntime(GatewayRoute route, SslServerAuthenticationOptions? tls, X509Certificate2Collection? clientCas)
    {
        Route = route;
        Tls = tls;
        ClientCas = clientCas;
        Mode = route.Mode == RouteMode.Passthrough ? ConnectionMode.Passthrough : ConnectionMode.Terminate;
        Backends = new BackendPool(route.Backends);
    }

    /// <summary>The route's backends and their health.</summary>
    public BackendPool Backends { get; }

    public GatewayRoute Route { get; }
    public SslServerAuthenticationOptions? Tls { get; }
    public X509Certificate2Collection? ClientCas { get; }
    public ConnectionMode Mode { get; }
    public string Name => Route.Name;

    internal static RouteRuntime Build(GatewayRoute route, List<ConfigError> errors)
    {
        if (route.Terminate is not { } t) return new RouteRuntime(route, null, null);
        try
        {
            var cert = PemLoader.LoadCertificateWithKey(t.Certificate, t.Key);
            X509Certificate2Collection? cas = t.ClientCa is { } ca ? PemLoader.LoadBundle(ca) : null;
            var tls = new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(cert, additionalCertificates: null, offline: true),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ClientCertificateRequired = cas is not null,
                // The chain is checked against this route's CA after the handshake, so a client without a certificate
                // can still reach a backend that accepts passwords (unless the route requires a certificate).
                RemoteCertificateValidationCallback = static (_, _, _, _) => true,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                AllowRenegotiation = false,
            };
            return new RouteRuntime(route, tls, cas);
        }
        catch (PkiException e)
        {
            errors.Add(new ConfigError($"{route.Path}.terminate.certificate", e.Message));
            return new RouteRuntime(route, null, null);
        }
    }

    /// <summary>True when <paramref name="certificate"/> chains to this route's client CA for client authentication.</summary>
    public bool Verify(X509Certificate2 certificate) => ClientCas is not null && ClientCertificateCheck.ChainsTo(certificate, ClientCas);
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

    /// <summary>Every route, the default one included.</summary>
    public IReadOnlyList<RouteRuntime> Routes { get; }

    public GatewayConfig Config { get; }
    public SniRouter<RouteRuntime> Router { get; }

    public static GatewayRuntime? Build(GatewayConfig config, out List<ConfigError> errors)
    {
        errors = [];
        var routes = new List<(string, RouteRuntime)>();
        foreach (var r in config.Routes) routes.Add((r.Sni!, RouteRuntime.Build(r, errors)));
        var fallback = config.Default is { } d ? RouteRuntime.Build(d, errors) : null;
        return errors.Count > 0 ? null
            : new GatewayRuntime(config, new SniRouter<RouteRuntime>(routes, fallback), [.. routes.Select(r => r.Item2), .. fallback is null ? [] : new[] { fallback }]);
    }
}
