using System.Net;
using System.Text;
using Isotun.Config;
using Isotun.Pki;
using Isotun.Protocol.Tls;

namespace Isotun.Gateway.Configuration;

/// <summary>
/// Loads and validates the gateway's YAML configuration, in the same way as the server's: every problem at once, each with
/// its key path (<c>routes[2].sni: duplicate 'vpn.acme.example' (also routes[0])</c>); unknown keys are errors. Certificates
/// and keys of terminating routes are loaded here, so a reload with a broken key file is refused before anything changes.
/// </summary>
public static class GatewayConfigLoader
{
    public const int MaxFileBytes = 1024 * 1024;
    internal const int DefaultListenPort = 443;
    internal const int DefaultAdminPort = 9420;
    internal const int DefaultPrereadTimeout = 5;
    internal const int DefaultHandshakeTimeout = 10;
    internal const int DefaultConnectTimeout = 5;
    internal const int DefaultIdleTimeout = 300;
    internal const int DefaultMaxConnections = 10_000;
    internal const int DefaultPerIpConnections = 64;
    internal const int DefaultPerIpRate = 20;
    internal const int DefaultPerIpBurst = 40;
    internal const int DefaultBanAfter = 20;
    internal const int DefaultFailureWindow = 60;
    internal const int DefaultBanTime = 300;

    private static readonly string[] RootKeys = ["listen", "admin", "routes", "default", "no-sni", "non-tls", "limits", "ticket-key-file"];
    private static readonly string[] AdminKeys = ["listen", "hosts"];
    private static readonly string[] RouteKeys = ["sni", "name", "passthrough", "terminate"];
    private static readonly string[] DefaultKeys = ["name", "passthrough", "terminate"];
    private static readonly string[] PassthroughKeys = ["backend", "backends", "proxy-protocol"];
    private static readonly string[] TerminateKeys = ["certificate", "key", "client-ca", "client-crl", "client-certificate", "backend", "backends", "proxy-protocol"];
    private static readonly string[] LimitsKeys =
    [
        "preread-timeout", "handshake-timeout", "connect-timeout", "idle-timeout", "max-connections", "per-ip-connections", "per-ip-rate",
        "per-ip-burst", "ban-after", "failure-window", "ban-time",
    ];

    public static GatewayConfigLoadResult Load(string path)
    {
        if (string.IsNullOrEmpty(path)) return Failed("(file)", "no configuration file given");
        return ConfigFile.TryRead(path, MaxFileBytes, "larger than 1 MiB", out var text, out var fullPath, out var error)
            ? Parse(text, fullPath)
            : Failed("(file)", error);
    }

    public static GatewayConfigLoadResult Parse(string yaml, string sourcePath)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        if (yaml.Length > MaxFileBytes) return Failed("(file)", "larger than 1 MiB");
        var fullSource = Path.GetFullPath(sourcePath);
        var walker = new ConfigWalker(Path.GetDirectoryName(fullSource) ?? "/");
        if (!YamlTreeReader.TryRead(yaml, out var root, out var syntaxError)) return new GatewayConfigLoadResult(null, [syntaxError!]);
        var rootMapping = ConfigWalker.IsAbsent(root) ? null : root as YamlTreeMapping;
        if (root is not null && !ConfigWalker.IsAbsent(root) && rootMapping is null)
        {
            walker.Error(string.Empty, $"expected a mapping of settings, found {root.KindName}");
            return new GatewayConfigLoadResult(null, walker.Errors);
        }

        var keys = walker.Keys(rootMapping, string.Empty, RootKeys);
        var listen = ReadEndpoint(walker, keys.GetValueOrDefault("listen"), "listen", new IPEndPoint(IPAddress.Any, DefaultListenPort))!;
        var (admin, adminHosts) = ReadAdmin(walker, keys.GetValueOrDefault("admin"));
        var routes = ReadRoutes(walker, keys.GetValueOrDefault("routes"));
        GatewayRoute? defaultRoute = null;
        var defaultMapping = walker.Mapping(keys.GetValueOrDefault("default"), "default");
        if (defaultMapping is not null)
        {
            defaultRoute = ReadRoute(walker, defaultMapping, "default", DefaultKeys, isDefault: true);
            if (defaultRoute is not null && routes.Any(r => r.Name == defaultRoute.Name))
                walker.Error("default.name", $"duplicate route name '{defaultRoute.Name}'");
        }

        var noSni = ReadAction(walker, keys.GetValueOrDefault("no-sni"), "no-sni");
        var nonTls = ReadAction(walker, keys.GetValueOrDefault("non-tls"), "non-tls");
        if (noSni == UnmatchedAction.Default && defaultMapping is null)
            walker.Error("no-sni", "'default' needs a default route");
        if (nonTls == UnmatchedAction.Default)
        {
            if (defaultMapping is null) walker.Error("non-tls", "'default' needs a default route");
            else if (defaultMapping.Entries.Any(e => e.Key is YamlTreeScalar { Value: "terminate" })) walker.Error("non-tls", "'default' needs a passthrough default route (non-TLS bytes cannot be terminated)");
        }

        if (routes.Count == 0 && defaultMapping is null && !walker.Errors.Any(e => e.Path.StartsWith("routes", StringComparison.Ordinal)))
            walker.Error("routes", "at least one route (or a default route) is required");

        var limits = ReadLimits(walker, keys.GetValueOrDefault("limits"));
        var ticketKeyFile = TicketKeyFileCheck.Read(walker, keys.GetValueOrDefault("ticket-key-file"), "ticket-key-file");
        if (walker.Errors.Count > 0) return new GatewayConfigLoadResult(null, walker.Errors);
        return new GatewayConfigLoadResult(new GatewayConfig(listen, admin, routes, defaultRoute, noSni, nonTls, limits, fullSource) { TicketKeyFile = ticketKeyFile, AdminHosts = adminHosts }, []);
    }

    /// <summary>A commented example that validates when its certificate files exist.</summary>
    public static string Example() => """
        # Isotun edge gateway. See docs/gateway.md. Relative paths are resolved against this file's directory.
        listen: 0.0.0.0:443
        admin:
          listen: 127.0.0.1:9420         # Prometheus /metrics; "off" disables it
          # hosts: [gw1.example.net]     # names a scraper may use for it, besides its IP addresses and localhost

        routes:
          # Passthrough: the tenant's own server terminates TLS and keeps its keys.
          - sni: vpn.acme.example
            passthrough:
              backend: 198.18.21.2:443
          # Wildcards match one or more labels; exact names win, then the longest suffix.
          - sni: "*.globex.example"
            name: globex
            passthrough:
              backend: 198.18.22.2:443
              proxy-protocol: false
          # Terminate: TLS ends here; plaintext + PROXY v2 (client address, SNI, client certificate) to the backend.
          - sni: vpn.initech.example
            terminate:
              certificate: pki/vpn.initech.example.crt
              key: pki/vpn.initech.example.key
              client-ca: pki/ca.crt               # optional: ask for client certificates signed by this CA
              client-certificate: optional        # or required
              # client-crl: pki/ca.crl            # optional: certificates revoked there count as unverified
              backend: 198.18.23.2:8443
              proxy-protocol: true

        # TLS without SNI, and bytes that are not TLS: reject (default) or send to the default route.
        no-sni: reject
        non-tls: reject

        # Keeps the key that seals the terminating routes' TLS session tickets, so that clients resume
        # after a reload or a restart (80 bytes, made 0600 at first start; under the installed unit only
        # /var/lib/isotun-gateway is writable). See docs/gateway.md.
        # ticket-key-file: /var/lib/isotun-gateway/ticket.key

        limits:
          preread-timeout: 5        # seconds to receive the whole ClientHello (slowloris)
          handshake-timeout: 10     # seconds for the TLS handshake of terminating routes
          connect-timeout: 5        # seconds to connect to a backend
          idle-timeout: 300         # close a relay after this many seconds without a byte either way (0: never)
          max-connections: 10000    # all clients together
          per-ip-connections: 64    # concurrent, per source address
          per-ip-rate: 20           # new connections per second, per source address
          per-ip-burst: 40
          ban-after: 20             # failures (bad hello, timeouts, failed handshakes, rate refusals) ...
          failure-window: 60        # ... within this many seconds ban the address ...
          ban-time: 300             # ... for this many seconds
        """ + "\n";

    private static GatewayConfigLoadResult Failed(string path, string message) => new(null, [new ConfigError(path, message)]);

    private static IPEndPoint? ReadEndpoint(ConfigWalker walker, YamlTreeNode? node, string path, IPEndPoint? fallback)
    {
        var text = walker.Text(node, path);
        if (text is null)
        {
            if (fallback is null && ConfigWalker.IsAbsent(node)) walker.Error(path, "required");
            return fallback;
        }

        if (EndpointText.TryParse(text, out var endpoint)) return endpoint;
        walker.Error(path, "must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535");
        return fallback;
    }

    private static (IPEndPoint? Listen, IReadOnlyList<string> Hosts) ReadAdmin(ConfigWalker walker, YamlTreeNode? node)
    {
        var keys = walker.Keys(walker.Mapping(node, "admin"), "admin", AdminKeys);
        var hosts = Metrics.HostFilter.Read(walker, keys.GetValueOrDefault("hosts"), "admin.hosts");
        var text = walker.Text(keys.GetValueOrDefault("listen"), "admin.listen");
        if (text is null) return (new IPEndPoint(IPAddress.Loopback, DefaultAdminPort), hosts);
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase) || text.Equals("false", StringComparison.OrdinalIgnoreCase)) return (null, hosts);
        return (ReadEndpoint(walker, keys.GetValueOrDefault("listen"), "admin.listen", null), hosts);
    }

    private static UnmatchedAction ReadAction(ConfigWalker walker, YamlTreeNode? node, string path)
    {
        var text = walker.Text(node, path);
        switch (text)
        {
            case null or "reject": return UnmatchedAction.Reject;
            case "default": return UnmatchedAction.Default;
            default:
                walker.Error(path, "must be 'reject' or 'default'");
                return UnmatchedAction.Reject;
        }
    }

    private static List<GatewayRoute> ReadRoutes(ConfigWalker walker, YamlTreeNode? node)
    {
        var routes = new List<GatewayRoute>();
        var sequence = walker.Sequence(node, "routes");
        if (sequence is null) return routes;
        var snis = new Dictionary<string, int>(StringComparer.Ordinal);
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < sequence.Items.Count; i++)
        {
            var path = ConfigWalker.Item("routes", i);
            var mapping = walker.Mapping(sequence.Items[i], path);
            if (mapping is null)
            {
                if (ConfigWalker.IsAbsent(sequence.Items[i])) walker.Error(path, "expected a mapping, found an empty item");
                continue;
            }

            var route = ReadRoute(walker, mapping, path, RouteKeys, isDefault: false);
            if (route is null) continue;
            if (route.Sni is { } sni)
            {
                if (snis.TryGetValue(sni, out int first)) walker.Error($"{path}.sni", $"duplicate '{sni}' (also routes[{first}])");
                else snis[sni] = i;
            }

            if (names.TryGetValue(route.Name, out int firstName)) walker.Error($"{path}.name", $"duplicate route name '{route.Name}' (also routes[{firstName}]); set name explicitly");
            else names[route.Name] = i;
            routes.Add(route);
        }

        return routes;
    }

    /// <summary>One route; null when it is too broken to use (every problem is reported).</summary>
    private static GatewayRoute? ReadRoute(ConfigWalker walker, YamlTreeMapping mapping, string path, string[] known, bool isDefault)
    {
        var keys = walker.Keys(mapping, path, known);
        int errors = walker.Errors.Count;
        string? sni = null;
        if (!isDefault)
        {
            var text = walker.Text(keys.GetValueOrDefault("sni"), $"{path}.sni");
            if (text is null)
            {
                if (ConfigWalker.IsAbsent(keys.GetValueOrDefault("sni"))) walker.Error($"{path}.sni", "required");
            }
            else
            {
                sni = NormalizeSni(text);
                if (sni is null) walker.Error($"{path}.sni", "must be a DNS name or '*.' followed by one (letters, digits, '-', '_')");
            }
        }

        var name = walker.Text(keys.GetValueOrDefault("name"), $"{path}.name") ?? (isDefault ? "default" : sni?.Replace("*", "wildcard", StringComparison.Ordinal));
        if (name is not null && !IsValidRouteName(name))
        {
            walker.Error($"{path}.name", "must be 1-63 characters of a-z, 0-9, '.', '_' and '-'");
            name = null;
        }

        var passthrough = keys.GetValueOrDefault("passthrough");
        var terminate = keys.GetValueOrDefault("terminate");
        bool hasPass = !ConfigWalker.IsAbsent(passthrough), hasTerm = !ConfigWalker.IsAbsent(terminate);
        if (hasPass == hasTerm)
        {
            walker.Error(path, hasPass ? "give either passthrough or terminate, not both" : "needs passthrough or terminate");
            return null;
        }

        RouteMode mode;
        IReadOnlyList<IPEndPoint>? backend;
        bool proxy;
        TerminateSettings? settings = null;
        if (hasPass)
        {
            mode = RouteMode.Passthrough;
            var p = $"{path}.passthrough";
            var k = walker.Keys(walker.Mapping(passthrough, p), p, PassthroughKeys);
            backend = ReadBackends(walker, k, p);
            proxy = walker.Boolean(k.GetValueOrDefault("proxy-protocol"), $"{p}.proxy-protocol", false);
        }
        else
        {
            mode = RouteMode.Terminate;
            var p = $"{path}.terminate";
            var k = walker.Keys(walker.Mapping(terminate, p), p, TerminateKeys);
            backend = ReadBackends(walker, k, p);
            proxy = walker.Boolean(k.GetValueOrDefault("proxy-protocol"), $"{p}.proxy-protocol", true);
            settings = ReadTerminate(walker, k, p);
        }

        if (walker.Errors.Count > errors || name is null || backend is null) return null;
        return new GatewayRoute(name, sni, mode, backend, proxy, settings, path);
    }

    /// <summary><c>backend</c> (one), or <c>backends</c> (the nodes of a cluster, balanced with health checks); exactly one of them.</summary>
    private static IReadOnlyList<IPEndPoint>? ReadBackends(ConfigWalker walker, Dictionary<string, YamlTreeNode> k, string p)
    {
        bool one = !ConfigWalker.IsAbsent(k.GetValueOrDefault("backend")), many = !ConfigWalker.IsAbsent(k.GetValueOrDefault("backends"));
        if (one && many)
        {
            walker.Error(p, "give backend or backends, not both");
            return null;
        }
        if (!many) return ReadEndpoint(walker, k.GetValueOrDefault("backend"), $"{p}.backend", null) is { } single ? [single] : null;
        var list = new List<IPEndPoint>();
        foreach (var (text, itemPath) in walker.TextList(k.GetValueOrDefault("backends"), $"{p}.backends"))
        {
            if (!EndpointText.TryParse(text, out var endpoint)) walker.Error(itemPath, "must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535");
            else if (list.Contains(endpoint)) walker.Error(itemPath, $"{endpoint} is listed twice");
            else list.Add(endpoint);
        }
        if (list.Count == 0 && !walker.Errors.Any(e => e.Path.StartsWith($"{p}.backends", StringComparison.Ordinal))) walker.Error($"{p}.backends", "at least one backend is required");
        if (list.Count > 64) walker.Error($"{p}.backends", "at most 64 backends");
        return list.Count is > 0 and <= 64 ? list : null;
    }

    private static TerminateSettings? ReadTerminate(ConfigWalker walker, Dictionary<string, YamlTreeNode> k, string p)
    {
        var cert = walker.FilePath(k.GetValueOrDefault("certificate"), $"{p}.certificate");
        var key = walker.FilePath(k.GetValueOrDefault("key"), $"{p}.key");
        if (cert is null && ConfigWalker.IsAbsent(k.GetValueOrDefault("certificate"))) walker.Error($"{p}.certificate", "required");
        if (key is null && ConfigWalker.IsAbsent(k.GetValueOrDefault("key"))) walker.Error($"{p}.key", "required");
        var clientCa = walker.FilePath(k.GetValueOrDefault("client-ca"), $"{p}.client-ca");
        var mode = walker.Text(k.GetValueOrDefault("client-certificate"), $"{p}.client-certificate");
        bool required = false;
        if (mode is not null)
        {
            if (mode == "required") required = true;
            else if (mode != "optional") walker.Error($"{p}.client-certificate", "must be 'optional' or 'required'");
            if (clientCa is null) walker.Error($"{p}.client-certificate", "needs client-ca");
        }

        if (cert is null || key is null) return null;
        PemFileCheck.CertificateAndKey(walker, cert, $"{p}.certificate", key, $"{p}.key");
        if (clientCa is not null) PemFileCheck.Bundle(walker, clientCa, $"{p}.client-ca");
        var clientCrl = walker.FilePath(k.GetValueOrDefault("client-crl"), $"{p}.client-crl");
        if (clientCrl is not null)
        {
            if (clientCa is null) walker.Error($"{p}.client-crl", "needs client-ca");
            try
            {
                RevocationList.Load(clientCrl);
            }
            catch (PkiException e)
            {
                walker.Error($"{p}.client-crl", e.Message);
            }
        }

        return new TerminateSettings(cert, key, clientCa, required) { ClientCrl = clientCrl };
    }

    private static GatewayLimits ReadLimits(ConfigWalker walker, YamlTreeNode? node)
    {
        var k = walker.Keys(walker.Mapping(node, "limits"), "limits", LimitsKeys);
        int Int(string key, int def, int min, int max) => walker.Integer(k.GetValueOrDefault(key), $"limits.{key}", def, min, max);
        var limits = new GatewayLimits(
            TimeSpan.FromSeconds(Int("preread-timeout", DefaultPrereadTimeout, 1, 60)),
            TimeSpan.FromSeconds(Int("handshake-timeout", DefaultHandshakeTimeout, 1, 120)),
            TimeSpan.FromSeconds(Int("connect-timeout", DefaultConnectTimeout, 1, 60)),
            Int("max-connections", DefaultMaxConnections, 1, 1_000_000),
            Int("per-ip-connections", DefaultPerIpConnections, 1, 100_000),
            Int("per-ip-rate", DefaultPerIpRate, 1, 100_000),
            Int("per-ip-burst", DefaultPerIpBurst, 1, 100_000),
            Int("ban-after", DefaultBanAfter, 0, 100_000),
            TimeSpan.FromSeconds(Int("failure-window", DefaultFailureWindow, 1, 86_400)),
            TimeSpan.FromSeconds(Int("ban-time", DefaultBanTime, 1, 86_400)))
        {
            IdleTimeout = TimeSpan.FromSeconds(Int("idle-timeout", DefaultIdleTimeout, 0, 86_400)),
        };
        if (limits.IdleTimeout > TimeSpan.Zero && limits.IdleTimeout < TimeSpan.FromSeconds(10))
            walker.Error("limits.idle-timeout", "must be 0 (never) or at least 10 seconds");
        if (limits.PerIpConnections > limits.MaxConnections)
            walker.Error("limits.per-ip-connections", "must not exceed limits.max-connections");
        if (limits.PerIpBurst < limits.PerIpRate)
            walker.Error("limits.per-ip-burst", "must be at least limits.per-ip-rate");
        return limits;
    }

    /// <summary>"name" or "*.name", lower-cased; null when invalid.</summary>
    internal static string? NormalizeSni(string text)
    {
        bool wildcard = text.StartsWith("*.", StringComparison.Ordinal);
        var rest = wildcard ? text[2..] : text;
        if (rest.EndsWith('.')) return null;
        var normalized = ClientHelloReader.NormalizeHostName(Encoding.ASCII.GetBytes(rest));
        if (normalized is null || rest.Any(c => c > 0x7F)) return null;
        return wildcard ? "*." + normalized : normalized;
    }

    private static bool IsValidRouteName(string name) =>
        name.Length is > 0 and <= 63 && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-');
}
