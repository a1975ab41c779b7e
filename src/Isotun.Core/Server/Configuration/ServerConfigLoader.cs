using System.Globalization;
using System.Net;
using System.Text;
using Isotun.Config;
using Isotun.Pki;
using Isotun.Protocol.Addressing;

namespace Isotun.Server.Configuration;

/// <summary>
/// Loads and validates the server's YAML configuration. Validation reports every problem at once, each with its key path
/// (<c>tenants[1].pool: overlaps tenants[0].pool (10.10.0.0/24)</c>); a configuration is returned only when there are none.
/// </summary>
public static partial class ServerConfigLoader
{
    public const int MaxFileBytes = 1024 * 1024;

    internal const int DefaultListenPort = 443;
    internal const int DefaultAdminPort = 9410;
    internal const string DefaultServerName = "server";
    internal const int DefaultMtu = 1400;
    internal const int DefaultDpd = 30;
    internal const int DefaultKeepalive = 20;
    internal const int DefaultCookieLifetime = 3600;
    internal const int DefaultCookieRotateHours = 24;
    internal const int DefaultHandshakeTimeout = 10;
    internal const int DefaultAuthTimeout = 60;
    internal const int DefaultMaxSessions = 1024;

    private const int MaxDeviceLength = 15;
    private const string DevicePrefix = "isotun-";

    private static readonly string[] RootKeys = ["listen", "tls", "admin", "state", "cookie", "limits", "tenants", "proxy", "cluster"];
    private static readonly string[] TlsKeys = ["certificate", "key", "client-ca", "server-name", "generate-ips", "ticket-key-file"];
    private static readonly string[] AdminKeys = ["listen", "socket", "token-file", "hosts"];
    private static readonly string[] CookieKeys = ["key-file", "lifetime", "rotate-hours"];
    private static readonly string[] LimitsKeys = ["handshake-timeout", "auth-timeout", "request-timeout", "min-body-rate", "write-timeout", "max-sessions", "max-connections", "per-source-connections", "login-ban-after", "login-source-ban-after", "login-failure-window", "login-ban-time", "drain-time", "session-memory-kib"];
    private static readonly string[] TenantKeys =
    [
        "name", "pool", "pool6", "namespace", "routes", "dns", "mtu", "dpd", "keepalive", "password-file", "device",
        "client-ca", "client-crl", "allowed-ous", "server-names", "max-sessions", "max-sessions-per-user", "over-user-limit", "rate-limit", "client-to-client", "lease-lifetime", "uplink", "offload", "queues",
        "sites", "east-west",
    ];

    /// <summary>Reads and validates a file; a missing, unreadable or oversized file is one error with path <c>(file)</c>.</summary>
    public static ConfigLoadResult Load(string path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return Failed("(file)", "no configuration file given");
        }

        return ConfigFile.TryRead(path, MaxFileBytes, "larger than 1 MiB", out var text, out var fullPath, out var error)
            ? Parse(text, fullPath)
            : Failed("(file)", error);
    }

    /// <summary>
    /// Only the admin settings of a file (with the state path, next to which the socket lives by default): what the
    /// admin commands need to reach a running server even when the rest of the file has errors (the server keeps its
    /// running config then, and lists every error when told to reload). Null, with the errors, when the file cannot be
    /// read or parsed, or its admin or state settings are wrong themselves.
    /// </summary>
    public static (AdminConfig? Admin, IReadOnlyList<ConfigError> Errors) LoadAdmin(string path)
    {
        if (string.IsNullOrEmpty(path)) return (null, [new ConfigError("(file)", "no configuration file given")]);
        if (!ConfigFile.TryRead(path, MaxFileBytes, "larger than 1 MiB", out var text, out var fullPath, out var error))
            return (null, [new ConfigError("(file)", error)]);
        if (!YamlTreeReader.TryRead(text, out var root, out var syntaxError)) return (null, [syntaxError!]);
        if (root is not YamlTreeMapping mapping) return (null, [new ConfigError("(file)", "expected a mapping of settings")]);
        var walker = new ConfigWalker(Path.GetDirectoryName(fullPath) ?? "/");
        var keys = walker.Keys(mapping, string.Empty, RootKeys);
        var state = walker.FilePath(keys.GetValueOrDefault("state"), "state") ?? walker.Resolve("isotun.db");
        var admin = ReadAdmin(walker, keys.GetValueOrDefault("admin"), state);
        var own = walker.Errors.Where(e => e.Path == "state" || e.Path == "admin" || e.Path.StartsWith("admin.", StringComparison.Ordinal)).ToList();
        return own.Count > 0 ? (null, own) : (admin, []);
    }

    /// <summary>Validates YAML text; relative paths in it are resolved against the directory of <paramref name="sourcePath"/>.</summary>
    public static ConfigLoadResult Parse(string yaml, string sourcePath)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        if (yaml.Length > MaxFileBytes)
        {
            return Failed("(file)", "larger than 1 MiB");
        }

        var fullSource = Path.GetFullPath(sourcePath);
        var baseDirectory = Path.GetDirectoryName(fullSource) ?? Path.GetPathRoot(fullSource) ?? "/";
        if (!YamlTreeReader.TryRead(yaml, out var root, out var syntaxError))
        {
            return new ConfigLoadResult(null, [syntaxError!]);
        }

        var walker = new ConfigWalker(baseDirectory);
        var rootMapping = ConfigWalker.IsAbsent(root) ? null : root as YamlTreeMapping;
        if (root is not null && !ConfigWalker.IsAbsent(root) && rootMapping is null)
        {
            walker.Error(string.Empty, $"expected a mapping of settings, found {root.KindName}");
            return new ConfigLoadResult(null, walker.Errors);
        }

        var keys = walker.Keys(rootMapping, string.Empty, RootKeys);
        var listen = ReadListen(walker, keys.GetValueOrDefault("listen"));
        var tls = ReadTls(walker, keys.GetValueOrDefault("tls"));
        var state = walker.FilePath(keys.GetValueOrDefault("state"), "state") ?? walker.Resolve("isotun.db");
        var admin = ReadAdmin(walker, keys.GetValueOrDefault("admin"), state);
        var cookie = ReadCookie(walker, keys.GetValueOrDefault("cookie"));
        var limits = ReadLimits(walker, keys.GetValueOrDefault("limits"));
        var cluster = ReadCluster(walker, keys.GetValueOrDefault("cluster"));
        var tenants = cluster is { ShareTenants: true } ? NoTenantsHere(walker, keys.GetValueOrDefault("tenants")) : ReadTenants(walker, keys.GetValueOrDefault("tenants"));
        var proxy = ProxyConfigReader.Read(walker, keys.GetValueOrDefault("proxy"), listen);
        if (cluster is not null) CheckClusterPool6(walker, tenants);
        // Checked here, not first at start: a key file restored open to others (a plain cp) or cut short fails the
        // validation, not the restart. A cluster node keeps its keys in the store and never reads the file.
        else if (File.Exists(cookie.KeyFile) && CookieKeyFile.Problem(cookie.KeyFile) is { } cookieProblem) walker.Error("cookie.key-file", $"{cookie.KeyFile}: {cookieProblem}");

        if (walker.Errors.Count > 0)
        {
            return new ConfigLoadResult(null, walker.Errors);
        }

        return new ConfigLoadResult(new ServerConfig(listen, tls, admin, state, cookie, limits, tenants, fullSource) { Proxy = proxy, Cluster = cluster }, []);
    }

    /// <summary>
    /// A commented example configuration that works as it is next to the files the README's steps make first
    /// (<c>isotun pki init</c>, <c>pki server --name vpn.example</c>, <c>pki client --tenant acme</c>,
    /// <c>user add --file acme.passwd</c>): it names exactly those files, so the server uses the certificate whose pin
    /// <c>pki pin</c> printed, and alice can log in by password or by certificate. With <paramref name="stateDir"/>, the
    /// state file and the cookie key live there instead of next to the config (for a read-only /etc under systemd).
    /// </summary>
    public static string Example(string? stateDir = null) => $"""
        # Isotun server configuration. Every key is optional except tenants; every key is in
        # docs/configuration.md. Relative paths are resolved against the directory of this file.

        # TLS listener for OpenConnect/AnyConnect clients: "ipv4:port" or "[ipv6]:port" (quote IPv6).
        listen: 0.0.0.0:443

        tls:
          # Server certificate and key (PEM), as written by `isotun pki server --name vpn.example`.
          # When both files are missing they are generated at first start, signed by the CA in the
          # same directory, with the name and IPs below.
          certificate: pki/vpn.example.crt
          key: pki/vpn.example.key
          server-name: vpn.example
          generate-ips:
            - 198.18.0.1
          # CA that signs client certificates (`isotun pki client`); enables certificate login.
          # The certificate's OU selects the tenant and its UID names the user.
          client-ca: pki/ca.crt
          # Keeps the key that seals TLS session tickets, so that clients resume their TLS session
          # after a restart, and on every server given the same file (80 bytes, made 0600 at first
          # start). Without it each start makes a key of its own. See docs/configuration.md.
          # ticket-key-file: {StatePath(stateDir, "ticket.key")}

        # Prometheus metrics (GET /metrics). "off" disables it.
        admin:
          listen: 127.0.0.1:9410
          # Names a scraper may use for it besides its IP addresses and localhost.
          # hosts: [vpn-1.example.net]

        # SQLite file for leases and revocations.
        state: {StatePath(stateDir, "isotun.db")}

        cookie:
          # Keys that seal session cookies; created at first start (mode 0600).
          key-file: {StatePath(stateDir, "cookie.key")}
          # Seconds a session cookie stays valid (60..604800).
          lifetime: 3600
          # Hours until a new key takes over sealing (1..8760); older keys open their cookies until those expire.
          rotate-hours: 24

        limits:
          handshake-timeout: 10   # seconds (1..120)
          auth-timeout: 60        # seconds (5..600)
          max-sessions: 1024      # 1..100000

        tenants:
          - name: acme                  # group label and URL path (https://vpn.example/acme); a-z 0-9 -
            # Users and PBKDF2 hashes, managed with `isotun user add --file acme.passwd --user NAME`.
            password-file: acme.passwd
            pool: 10.10.0.0/24          # IPv4 pool, /8../30; .1 is the tenant's gateway
            # Each tenant lives in its own network namespace (isotun-acme), created at start. Clients
            # reach the gateway (10.10.0.1); the tenant's own network is reached through an uplink:
            uplink: none
            # uplink:
            #   veth:                        # a veth pair into an existing namespace
            #     peer-namespace: acme-net
            #     address: 198.18.3.1/24     # the tenant side
            #     peer-address: 198.18.3.2/24
            # Split-include routes pushed to clients; omit for a default route (all traffic).
            routes:
              - 10.10.0.0/24
            #  - 10.20.0.0/16               # the tenant's network behind its uplink
            # dns:                          # pushed to clients; give one they can reach
            #   - 10.20.0.53
            mtu: 1400                   # 576..9000
            dpd: 30                     # seconds (5..3600)
            keepalive: 20               # seconds (5..3600)

          - name: globex
            # The same pool as acme: pools may overlap, since each tenant has its own namespace
            # (they must not overlap only between tenants with the same namespace, e.g. "host").
            pool: 10.10.0.0/24
            routes:
              - 10.10.0.0/24
            # No password-file: only certificates with OU=globex from tls.client-ca log in here.
        """ + "\n";

    private static string StatePath(string? stateDir, string file) => stateDir is null ? file : Path.Combine(stateDir, file);

    private static ConfigLoadResult Failed(string path, string message) => new(null, [new ConfigError(path, message)]);

    private static IPEndPoint ReadListen(ConfigWalker walker, YamlTreeNode? node)
    {
        var fallback = new IPEndPoint(IPAddress.Any, DefaultListenPort);
        var text = walker.Text(node, "listen");
        return text is null ? fallback : ParseEndpoint(walker, text, "listen") ?? fallback;
    }

    private static IPEndPoint? ParseEndpoint(ConfigWalker walker, string text, string path)
    {
        if (EndpointText.TryParse(text, out var endpoint))
        {
            return endpoint;
        }

        walker.Error(path, "must be ipv4:port or \"[ipv6]:port\" with a port from 1 to 65535");
        return null;
    }

    private static TlsConfig ReadTls(ConfigWalker walker, YamlTreeNode? node)
    {
        var keys = walker.Keys(walker.Mapping(node, "tls"), "tls", TlsKeys);
        var certificate = walker.FilePath(keys.GetValueOrDefault("certificate"), "tls.certificate");
        var key = walker.FilePath(keys.GetValueOrDefault("key"), "tls.key");
        var certificateGiven = !ConfigWalker.IsAbsent(keys.GetValueOrDefault("certificate"));
        var keyGiven = !ConfigWalker.IsAbsent(keys.GetValueOrDefault("key"));
        if (certificateGiven != keyGiven)
        {
            walker.Error(certificateGiven ? "tls.key" : "tls.certificate", $"required when {(certificateGiven ? "tls.certificate" : "tls.key")} is set");
        }
        else if ((certificate is not null && key is not null) || !certificateGiven)
        {
            certificate ??= walker.Resolve("pki/server.crt");
            key ??= walker.Resolve("pki/server.key");

            // Both missing: generated at first start. Exactly one missing: refuse, the other is not ours to replace.
            var certificateExists = File.Exists(certificate);
            var keyExists = File.Exists(key);
            if (certificateExists != keyExists)
            {
                var missingPath = certificateExists ? "tls.key" : "tls.certificate";
                var presentPath = certificateExists ? "tls.certificate" : "tls.key";
                walker.Error(missingPath, $"file not found: {(certificateExists ? key : certificate)} ({presentPath} exists; give both files, or neither to generate them)");
            }
            // Both there: the key is the owner's alone and belongs to the certificate, as for the gateway's and etcd's.
            else if (certificateExists) PemFileCheck.CertificateAndKey(walker, certificate, "tls.certificate", key, "tls.key");
        }

        var clientCa = walker.FilePath(keys.GetValueOrDefault("client-ca"), "tls.client-ca");
        if (clientCa is not null)
        {
            PemFileCheck.Bundle(walker, clientCa, "tls.client-ca");
        }

        var serverName = walker.Text(keys.GetValueOrDefault("server-name"), "tls.server-name") ?? DefaultServerName;
        if (!PkiNames.IsValidHostName(serverName, allowWildcard: false) && !IpText.TryParse(serverName, out _))
        {
            walker.Error("tls.server-name", "must be a DNS name or an IP address");
        }

        var generateIps = ReadAddresses(walker, keys.GetValueOrDefault("generate-ips"), "tls.generate-ips");
        return new TlsConfig(
            certificate ?? walker.Resolve("pki/server.crt"),
            key ?? walker.Resolve("pki/server.key"),
            clientCa,
            serverName,
            generateIps) { TicketKeyFile = TicketKeyFileCheck.Read(walker, keys.GetValueOrDefault("ticket-key-file"), "tls.ticket-key-file") };
    }

    private static List<IPAddress> ReadAddresses(ConfigWalker walker, YamlTreeNode? node, string path)
    {
        var addresses = new List<IPAddress>();
        foreach (var (text, itemPath) in walker.TextList(node, path))
        {
            if (IpText.TryParse(text, out var address))
            {
                addresses.Add(address);
            }
            else
            {
                walker.Error(itemPath, "not an IP address");
            }
        }

        return addresses;
    }

    private static AdminConfig ReadAdmin(ConfigWalker walker, YamlTreeNode? node, string statePath)
    {
        var keys = walker.Keys(walker.Mapping(node, "admin"), "admin", AdminKeys);
        var fallback = new IPEndPoint(IPAddress.Loopback, DefaultAdminPort);
        var text = walker.Text(keys.GetValueOrDefault("listen"), "admin.listen");
        IPEndPoint? listen = text is null ? fallback
            : text.Equals("off", StringComparison.OrdinalIgnoreCase) || text.Equals("false", StringComparison.OrdinalIgnoreCase) ? null
            : ParseEndpoint(walker, text, "admin.listen") ?? fallback;

        // The unix socket lives next to the state file unless told otherwise; "off" turns it off.
        string? socket = Path.Combine(Path.GetDirectoryName(statePath) ?? ".", "admin.sock");
        var socketText = walker.Text(keys.GetValueOrDefault("socket"), "admin.socket");
        if (socketText is not null)
            socket = socketText.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : walker.Resolve(socketText);
        if (socket is not null && socket.Length > 107)
            walker.Error("admin.socket", $"a unix socket path is at most 107 bytes; this one is {socket.Length}: set admin.socket to a shorter path");

        var tokenFile = walker.FilePath(keys.GetValueOrDefault("token-file"), "admin.token-file");
        if (tokenFile is not null)
        {
            if (!File.Exists(tokenFile)) walker.Error("admin.token-file", $"file not found: {tokenFile} (make one with `isotun admin token --file {tokenFile}`)");
            else if (Isotun.Security.SecretFile.OpenToOthers(tokenFile))
                walker.Error("admin.token-file", $"{tokenFile} must not be readable by group or others (chmod 600)");
            else if (ReadToken(walker, tokenFile) is { Length: < AdminConfig.MinTokenLength } token)
                walker.Error("admin.token-file", $"{tokenFile} holds a token of {token.Length} characters; a token is at least {AdminConfig.MinTokenLength} (make one with `isotun admin token --file {tokenFile} --force`)");
            // The TCP listener is plain HTTP: off loopback, the token (and with it the whole API) would cross the network
            // in clear for anyone on the path to read.
            if (listen is not null && !IPAddress.IsLoopback(listen.Address))
                walker.Error("admin.token-file", $"the API's token would cross the network in clear on {listen} (plain HTTP): keep admin.listen on loopback "
                    + "for the API (reach it through the unix socket or an SSH tunnel), or leave token-file out to serve only /metrics, /healthz and /readyz there");
        }
        var hosts = Metrics.HostFilter.Read(walker, keys.GetValueOrDefault("hosts"), "admin.hosts");
        return new AdminConfig(listen) { Socket = socket, TokenFile = tokenFile, Hosts = hosts };
    }

    /// <summary>The token in <paramref name="file"/>, or null with the error listed when it cannot be read (not root, say).</summary>
    private static string? ReadToken(ConfigWalker walker, string file)
    {
        try
        {
            return AdminConfig.ReadToken(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            walker.Error("admin.token-file", $"cannot read {file}: {e.Message}");
            return null;
        }
    }

    private static CookieConfig ReadCookie(ConfigWalker walker, YamlTreeNode? node)
    {
        var keys = walker.Keys(walker.Mapping(node, "cookie"), "cookie", CookieKeys);
        var keyFile = walker.FilePath(keys.GetValueOrDefault("key-file"), "cookie.key-file") ?? walker.Resolve("cookie.key");
        var lifetime = walker.Integer(keys.GetValueOrDefault("lifetime"), "cookie.lifetime", DefaultCookieLifetime, 60, 604_800);
        var rotate = walker.Integer(keys.GetValueOrDefault("rotate-hours"), "cookie.rotate-hours", DefaultCookieRotateHours, 1, 8760);
        return new CookieConfig(keyFile, TimeSpan.FromSeconds(lifetime)) { RotateEvery = TimeSpan.FromHours(rotate) };
    }

    private static LimitsConfig ReadLimits(ConfigWalker walker, YamlTreeNode? node)
    {
        var keys = walker.Keys(walker.Mapping(node, "limits"), "limits", LimitsKeys);
        var handshake = walker.Integer(keys.GetValueOrDefault("handshake-timeout"), "limits.handshake-timeout", DefaultHandshakeTimeout, 1, 120);
        var auth = walker.Integer(keys.GetValueOrDefault("auth-timeout"), "limits.auth-timeout", DefaultAuthTimeout, 5, 600);
        var sessions = walker.Integer(keys.GetValueOrDefault("max-sessions"), "limits.max-sessions", DefaultMaxSessions, 1, 100_000);
        var connections = walker.Integer(keys.GetValueOrDefault("max-connections"), "limits.max-connections", LimitsConfig.DefaultMaxConnections, 1, 1_000_000);
        var perSource = walker.Integer(keys.GetValueOrDefault("per-source-connections"), "limits.per-source-connections", LimitsConfig.DefaultPerSourceConnections, 1, 1_000_000);
        var request = walker.Integer(keys.GetValueOrDefault("request-timeout"), "limits.request-timeout", LimitsConfig.DefaultRequestTimeoutSeconds, 1, 600);
        var bodyRate = walker.Integer(keys.GetValueOrDefault("min-body-rate"), "limits.min-body-rate", LimitsConfig.DefaultMinBodyRate, 1, 100_000_000);
        var write = walker.Integer(keys.GetValueOrDefault("write-timeout"), "limits.write-timeout", LimitsConfig.DefaultWriteTimeoutSeconds, 1, 600);
        var banAfter = walker.Integer(keys.GetValueOrDefault("login-ban-after"), "limits.login-ban-after", 10, 0, 100_000);
        var drain = walker.Integer(keys.GetValueOrDefault("drain-time"), "limits.drain-time", 5, 0, 600);
        var sourceBanAfter = walker.Integer(keys.GetValueOrDefault("login-source-ban-after"), "limits.login-source-ban-after", 50, 0, 1_000_000);
        var failureWindow = walker.Integer(keys.GetValueOrDefault("login-failure-window"), "limits.login-failure-window", 300, 1, 86_400);
        var banTime = walker.Integer(keys.GetValueOrDefault("login-ban-time"), "limits.login-ban-time", 300, 1, 86_400);
        // At least two 64 KiB super-packet buffers, so that a GSO peer can always be sent something; at most 1 GiB.
        var sessionMemory = walker.Integer(keys.GetValueOrDefault("session-memory-kib"), "limits.session-memory-kib", LimitsConfig.DefaultSessionMemoryKib, 128, 1_048_576);
        return new LimitsConfig(TimeSpan.FromSeconds(handshake), TimeSpan.FromSeconds(auth), sessions, connections, perSource)
        {
            LoginBanAfter = banAfter,
            DrainTime = TimeSpan.FromSeconds(drain),
            LoginSourceBanAfter = sourceBanAfter,
            LoginFailureWindow = TimeSpan.FromSeconds(failureWindow),
            LoginBanTime = TimeSpan.FromSeconds(banTime),
            RequestTimeout = TimeSpan.FromSeconds(request),
            MinBodyRate = bodyRate,
            WriteTimeout = TimeSpan.FromSeconds(write),
            SessionMemory = sessionMemory * 1024L,
        };
    }

    private static List<TenantConfig> ReadTenants(ConfigWalker walker, YamlTreeNode? node)
    {
        var tenants = new List<TenantConfig>();
        var sequence = walker.Sequence(node, "tenants");
        if (sequence is null || sequence.Items.Count == 0)
        {
            if (ConfigWalker.IsAbsent(node) || sequence is not null)
            {
                walker.Error("tenants", "at least one tenant is required");
            }

            return tenants;
        }

        // Seen values with the tenant index that first used them, for cross-tenant checks.
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var devices = new Dictionary<(string, string), int>();
        var namespaces = new Dictionary<string, int>(StringComparer.Ordinal);
        var pools = new List<(IPNetwork Pool, int Index, string Namespace)>();
        var claims = new TenantClaims();
        for (var i = 0; i < sequence.Items.Count; i++)
        {
            var path = ConfigWalker.Item("tenants", i);
            var mapping = walker.Mapping(sequence.Items[i], path);
            if (mapping is null)
            {
                if (ConfigWalker.IsAbsent(sequence.Items[i]))
                {
                    walker.Error(path, "expected a mapping, found an empty item");
                }

                continue;
            }

            var tenant = ReadTenant(walker, mapping, path, out var pool);
            if (tenant.Name.Length > 0)
            {
                if (names.TryGetValue(tenant.Name, out var first))
                {
                    walker.Error($"{path}.name", $"duplicate tenant name '{tenant.Name}' (also tenants[{first}])");
                }
                else
                {
                    names[tenant.Name] = i;
                }
            }

            // Pools and devices only clash inside one namespace: separate namespaces may overlap freely.
            if (pool is { } network)
            {
                foreach (var (other, index, ns) in pools)
                {
                    if (ns == tenant.Namespace && CidrParser.Overlaps(network, other))
                    {
                        walker.Error($"{path}.pool", $"overlaps tenants[{index}].pool ({other}) in the same namespace");
                    }
                }

                pools.Add((network, i, tenant.Namespace));
            }

            if (tenant.Device.Length > 0)
            {
                if (devices.TryGetValue((tenant.Namespace, tenant.Device), out var first))
                {
                    walker.Error($"{path}.device", $"device '{tenant.Device}' is also used by tenants[{first}] in the same namespace; set device explicitly");
                }
                else
                {
                    devices[(tenant.Namespace, tenant.Device)] = i;
                }
            }

            // The host namespace too holds one tenant at most: two tenants there would share one routing table, and
            // each could reach the other's clients.
            if (tenant.Namespace.Length > 0)
            {
                if (namespaces.TryGetValue(tenant.Namespace, out var owner) && tenant.InHostNamespace)
                {
                    walker.Error($"{path}.namespace", $"'host' is also used by tenants[{owner}]: two tenants in the host namespace share its routing table and could reach each other; give each its own namespace");
                }
                else if (namespaces.TryGetValue(tenant.Namespace, out owner))
                {
                    walker.Error($"{path}.namespace", $"namespace '{tenant.Namespace}' is also used by tenants[{owner}]");
                }
                else
                {
                    namespaces[tenant.Namespace] = i;
                }
            }

            ClaimIsolation(walker, path, i, tenant, claims);
            tenants.Add(tenant);
        }

        CheckUplinksAcrossTenants(walker, claims);
        return tenants;
    }

    /// <summary>Reads one tenant; invalid fields come back empty (and are reported), so cross-tenant checks can skip them.</summary>
    private static TenantConfig ReadTenant(ConfigWalker walker, YamlTreeMapping mapping, string path, out IPNetwork? pool)
    {
        var keys = walker.Keys(mapping, path, TenantKeys);

        var namePath = $"{path}.name";
        var name = walker.Text(keys.GetValueOrDefault("name"), namePath);
        if (name is null)
        {
            if (ConfigWalker.IsAbsent(keys.GetValueOrDefault("name")))
            {
                walker.Error(namePath, "required");
            }

            name = string.Empty;
        }
        else if (!PkiNames.IsValidTenant(name))
        {
            walker.Error(namePath, "must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit");
            name = string.Empty;
        }

        pool = null;
        var poolPath = $"{path}.pool";
        var poolText = walker.Text(keys.GetValueOrDefault("pool"), poolPath);
        if (poolText is null)
        {
            if (ConfigWalker.IsAbsent(keys.GetValueOrDefault("pool")))
            {
                walker.Error(poolPath, "required");
            }
        }
        else
        {
            pool = ReadPool(walker, poolText, poolPath);
        }

        var routes = new List<IpNetwork>();
        foreach (var (text, itemPath) in walker.TextList(keys.GetValueOrDefault("routes"), $"{path}.routes"))
        {
            var outcome = CidrParser.TryParse(text, out var route);
            switch (outcome)
            {
                case CidrParseOutcome.Ok:
                    routes.Add(route.ToIpNetwork());
                    break;
                case CidrParseOutcome.HostBitsSet:
                    walker.Error(itemPath, $"host bits are set; did you mean {route}?");
                    break;
                case CidrParseOutcome.BadPrefix:
                    walker.Error(itemPath, "prefix length out of range for the address family");
                    break;
                default:
                    walker.Error(itemPath, "must be a CIDR such as 10.20.0.0/16 or fd00::/64");
                    break;
            }
        }

        var dns = ReadAddresses(walker, keys.GetValueOrDefault("dns"), $"{path}.dns");
        var mtu = walker.Integer(keys.GetValueOrDefault("mtu"), $"{path}.mtu", DefaultMtu, 576, 9000);
        var dpd = walker.Integer(keys.GetValueOrDefault("dpd"), $"{path}.dpd", DefaultDpd, 5, 3600);
        var keepalive = walker.Integer(keys.GetValueOrDefault("keepalive"), $"{path}.keepalive", DefaultKeepalive, 5, 3600);

        var passwordPath = $"{path}.password-file";
        var passwordFile = walker.FilePath(keys.GetValueOrDefault("password-file"), passwordPath);
        if (passwordFile is not null)
        {
            CheckPasswordFile(walker, passwordFile, passwordPath);
        }

        var devicePath = $"{path}.device";
        var device = walker.Text(keys.GetValueOrDefault("device"), devicePath);
        if (device is null)
        {
            device = name.Length > 0 ? DevicePrefix + name[..Math.Min(8, name.Length)] : string.Empty;
        }
        else if (!IsValidDevice(device))
        {
            walker.Error(devicePath, $"must be 1-{MaxDeviceLength} characters of A-Z a-z 0-9 _ . -");
            device = string.Empty;
        }

        var tenant = new TenantConfig(name, pool?.ToIpNetwork() ?? default, routes, dns, mtu, dpd, keepalive, passwordFile, device);
        return ReadSites(walker, keys, path, ReadTenantIsolation(walker, keys, path, tenant));
    }

    private static IPNetwork? ReadPool(ConfigWalker walker, string text, string path)
    {
        var outcome = CidrParser.TryParse(text, out var network);
        switch (outcome)
        {
            case CidrParseOutcome.Ok when network.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork:
                walker.Error(path, "must be an IPv4 CIDR (IPv6 goes in pool6)");
                return null;
            case CidrParseOutcome.Ok when network.PrefixLength is < 8 or > 30:
                walker.Error(path, "prefix length must be between /8 and /30");
                return null;
            case CidrParseOutcome.Ok:
                return network;
            case CidrParseOutcome.HostBitsSet:
                walker.Error(path, $"host bits are set; did you mean {network}?");
                return null;
            case CidrParseOutcome.BadPrefix:
                walker.Error(path, "prefix length must be between /8 and /30");
                return null;
            default:
                walker.Error(path, "must be an IPv4 CIDR such as 10.10.0.0/24");
                return null;
        }
    }

    private static void CheckPasswordFile(ConfigWalker walker, string file, string path)
    {
        if (!File.Exists(file))
        {
            walker.Error(path, $"file not found: {file}");
            return;
        }

        try
        {
            _ = Isotun.Security.PasswordFile.Load(file);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            walker.Error(path, ex.Message);
        }
    }

    private static bool IsValidDevice(string device)
    {
        if (device.Length is 0 or > MaxDeviceLength || device is "." or "..")
        {
            return false;
        }

        foreach (var c in device)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
