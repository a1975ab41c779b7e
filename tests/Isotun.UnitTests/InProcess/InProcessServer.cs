using System.Net;
using Isotun.Client;
using Isotun.Pki;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State;
using Isotun.State.Cluster;
using Isotun.Tun;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A whole <see cref="VpnServer"/> in the test process: TLS on 127.0.0.1 (a free port), in-memory state, and one
/// memory TUN per tenant instead of namespaces. Tenant names are unique in the process, so the per-tenant
/// metrics a test reads are its own.
/// </summary>
internal sealed class InProcessServer : IAsyncDisposable
{
    private static int s_next;
    private readonly TempDirectory _dir;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, MemoryTenantNetwork> _networks = new(StringComparer.Ordinal);
    private readonly Task _run;

    private InProcessServer(TempDirectory dir, ServerConfig config, bool uso, SharedState? shared = null)
    {
        _dir = dir;
        Server = new VpnServer(config, NullLoggerFactory.Instance, new MemoryStateStore(), networks: tc =>
        {
            var network = new MemoryTenantNetwork(tc, uso);
            lock (_networks) _networks[tc.Name] = network;
            return network;
        }, shared: shared);
        Tenants = Server.Config.Tenants.Select(t => t.Name).ToArray();
        _run = Task.Run(() => Server.RunAsync(_stop.Token));
    }

    public VpnServer Server { get; }
    public IReadOnlyList<string> Tenants { get; }
    public string Tenant => Tenants[0];
    public int Port => Server.LocalEndpoint!.Port;
    public string Pin => CertificatePin.Compute(Server.ServerCertificate);

    /// <summary>
    /// Starts a server with one tenant per entry of <paramref name="tenants"/> (one plain tenant when none), each
    /// changed by its function: pool 10.77.&lt;i&gt;.0/24, one queue, offload on, the users of <see cref="InProcessPki.Passwords"/>.
    /// </summary>
    public static async Task<InProcessServer> StartAsync(InProcessPki pki, params Func<TenantConfig, TenantConfig>[] tenants) =>
        await StartAsync(pki, uso: true, tenants);

    /// <param name="uso">Whether the memory TUNs take UDP super-packets whole (a kernel from 6.2) or need them cut.</param>
    public static Task<InProcessServer> StartAsync(InProcessPki pki, bool uso, params Func<TenantConfig, TenantConfig>[] tenants) =>
        StartAsync(pki, uso, server: c => c, tenants);

    /// <param name="server">Changes the server's config (limits and the like) before it starts.</param>
    public static async Task<InProcessServer> StartAsync(InProcessPki pki, bool uso, Func<ServerConfig, ServerConfig> server, params Func<TenantConfig, TenantConfig>[] tenants)
    {
        ServerMetrics.Start();
        if (tenants.Length == 0) tenants = [t => t];
        var dir = new TempDirectory();
        int id = Interlocked.Increment(ref s_next);
        var yaml = Head(pki, dir.File("state.db")) + $"""
            cookie:
              key-file: {dir.File("cookie.key")}
            tenants:

            """;
        for (int i = 0; i < tenants.Length; i++)
        {
            yaml += $"""
                  - name: ip{id}t{i}
                    pool: 10.77.{i}.0/24
                    password-file: {pki.Passwords}
                    queues: 1

                """;
        }
        var path = dir.File("isotun.yaml");
        File.WriteAllText(path, yaml);
        var loaded = ServerConfigLoader.Load(path);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        var config = server(loaded.Config! with
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Tenants = loaded.Config!.Tenants.Select((t, i) => tenants[i](t)).ToArray(),
        });
        InProcessServer started;
        try
        {
            started = new InProcessServer(dir, config, uso);
        }
        catch
        {
            dir.Dispose();
            throw;
        }
        return await ListeningAsync(started);
    }

    /// <summary>Waits until <paramref name="started"/> listens; one that failed to start is disposed (its directory with it) and its failure thrown.</summary>
    private static async Task<InProcessServer> ListeningAsync(InProcessServer started)
    {
        try
        {
            await Eventually.True(() => started.Server.LocalEndpoint is not null || started._run.IsCompleted, "the server did not start listening");
            if (started._run.IsCompleted) await started._run;
            return started;
        }
        catch
        {
            await started.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// A node of a cluster whose tenants are shared (<c>cluster.share-tenants</c>): its file names no tenant, and it
    /// runs the ones published in <paramref name="shared"/>'s store. Its file is written in <paramref name="dir"/>, so
    /// relative paths in the tenants are read from there.
    /// </summary>
    internal static async Task<InProcessServer> StartNodeAsync(InProcessPki pki, SharedState shared, TempDirectory dir)
    {
        ServerMetrics.Start();
        var loaded = ServerConfigLoader.Load(WriteNodeConfig(pki, shared.Node, dir));
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        var own = new TempDirectory();
        InProcessServer started;
        try
        {
            started = new InProcessServer(own, loaded.Config! with { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, uso: true, shared);
        }
        catch
        {
            own.Dispose();
            throw;
        }
        return await ListeningAsync(started);
    }

    /// <summary>
    /// Writes the configuration file of node <paramref name="node"/> of a cluster that shares its tenants, in
    /// <paramref name="dir"/>, with <paramref name="extra"/> settings at the end; returns its path.
    /// </summary>
    internal static string WriteNodeConfig(InProcessPki pki, string node, TempDirectory dir, string extra = "")
    {
        var path = dir.File($"{node}.yaml");
        File.WriteAllText(path, Head(pki, dir.File(node + ".db")) + $"""
            cluster:
              etcd: [http://127.0.0.1:2379]
              node: {node}
              share-tenants: true

            """ + extra);
        return path;
    }

    /// <summary>What every test server's file begins with: a listener, the test PKI, no admin listener, the state file.</summary>
    private static string Head(InProcessPki pki, string state) => $"""
        listen: 127.0.0.1:4443
        tls:
          certificate: {pki.ServerCertificate}
          key: {pki.ServerKey}
          client-ca: {pki.Ca}
        admin:
          listen: off
        state: {state}

        """;

    /// <summary>The memory TUN of tenant <paramref name="tenant"/> (the first by default).</summary>
    public MemoryTun Tun(string? tenant = null) => Network(tenant).Tun!;

    /// <summary>The network twin of tenant <paramref name="tenant"/> (the first by default): its TUN and the routes it was given.</summary>
    public MemoryTenantNetwork Network(string? tenant = null)
    {
        lock (_networks) return _networks[tenant ?? Tenant];
    }

    /// <summary>What a client of <paramref name="tenant"/> is given by default: this server's pin, the first user, one queue.</summary>
    public ClientOptions Options(string? tenant = null, string? user = InProcessPki.User, string? password = InProcessPki.Password) => new()
    {
        Server = new Uri($"https://127.0.0.1:{Port}/{tenant ?? Tenant}"),
        User = user,
        Password = password,
        ServerPin = Pin,
        Queues = 1,
        ConfigureRoutes = false,
        ReconnectTimeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>The session holding <paramref name="address"/>, if any.</summary>
    public VpnSession? Session(IPAddress address) =>
        Server.Sessions.All.FirstOrDefault(s => address.Equals(s.Address) || address.Equals(s.Address6));

    /// <summary>The session holding <paramref name="address"/>, once <paramref name="connections"/> of its connections (primary and queues) are live.</summary>
    public async Task<VpnSession> LiveSessionAsync(IPAddress address, int connections = 1)
    {
        var session = await Eventually.Value(() => Session(address), $"no session holds {address}");
        await Eventually.True(() => session.LiveQueues == connections, $"the session does not have {connections} live connections");
        return session;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { await _run.WaitAsync(TimeSpan.FromSeconds(15)); } catch (Exception) { }
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
