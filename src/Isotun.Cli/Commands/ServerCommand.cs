using System.CommandLine;
using Isotun.Admin;
using Isotun.Linux;
using Isotun.Protocol.Cookies;
using Isotun.Server;
using Isotun.Server.Configuration;
using Isotun.State.Cluster;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun server --config FILE</c>: the VPN concentrator.</summary>
public static class ServerCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Server configuration file (YAML); see `isotun config example`", Required = true };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Debug logging" };
        var command = new Command("server", "Run the VPN server (OpenConnect-compatible, TLS only)");
        command.Options.Add(config);
        command.Options.Add(verbose);
        command.SetAction(async (parse, _) =>
        {
            // Before the first socket: packets are read and written by the thread the kernel woke (see IoThreads).
            IoThreads.PreferInlineCompletions();
            var path = parse.GetValue(config)!;
            var loaded = ServerConfigLoader.Load(path);
            if (!loaded.Ok)
            {
                Console.Error.WriteLine($"{path}: {loaded.Errors.Count} error(s); the server was not started");
                foreach (var e in loaded.Errors) Console.Error.WriteLine($"  {e.Path}: {e.Message}");
                return 2;
            }
            // One server per state file, claimed before anything is touched: a second server started with the same
            // config fails here, and leaves the running one's admin socket, namespaces and state alone.
            var claimPath = Path.GetFullPath(loaded.Config!.StatePath + ".lock");
            FileStream? claim;
            try
            {
                Security.SecretFile.CreateDirectoryFor(claimPath); // as the state file's own would be
                claim = FileClaim.TryTake(claimPath, create: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"isotun server: cannot lock {claimPath}: {e.Message}");
                return 1;
            }
            using var held = claim;
            if (claim is null)
            {
                Console.Error.WriteLine($"isotun server: another isotun server is running with the state file {loaded.Config.StatePath} (it holds {claimPath}); stop it first");
                return 1;
            }
            using var signals = new Signals();
            using var logs = Logging.Create(parse, parse.GetValue(verbose));
            // SIGHUP reloads the config file; a bad file is refused and the running config stays. Handled from here on:
            // left to its default until the server exists (a cluster join takes up to 15 s), it would end the process.
            VpnServer? running = null;
            Hangup.Hear(); // also when started under nohup
            using var hup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, ctx =>
            {
                ctx.Cancel = true;
                if (Volatile.Read(ref running) is { } server) ThreadPool.QueueUserWorkItem(_ => server.Reload());
                else logs.CreateLogger("isotun.server").LogWarning("SIGHUP before the server started: nothing to reload yet");
            });
            try
            {
                await using var shared = await JoinClusterAsync(loaded.Config!.Cluster, loaded.Config.StatePath, logs, signals.Token);
                await using var server = new VpnServer(loaded.Config!, logs, shared: shared);
                Volatile.Write(ref running, server); // its start and a reload take turns (VpnServer.RunAsync)
                try
                {
                    // The admin plane: the unix socket (and TCP, for /metrics and the API with a token).
                    await using var admin = await AdminApi.StartAsync(server, loaded.Config!.Admin, logs);
                    var log = logs.CreateLogger("isotun.server");
                    if (loaded.Config.Admin.Socket is { } socket) log.LogInformation("admin API on unix socket {Socket} (mode 0600)", socket);
                    if (loaded.Config.Admin.Listen is { } tcp)
                        log.LogInformation("admin on http://{Endpoint}: /metrics, /healthz, /readyz{Api}", tcp, loaded.Config.Admin.TokenFile is null ? "" : ", and /api/v1 with the bearer token");
                    await server.RunAsync(signals.Token);
                }
                finally
                {
                    Volatile.Write(ref running, null); // a SIGHUP while it stops reloads nothing
                }
                return 0;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"isotun server: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>The cluster's etcd, as <paramref name="cluster"/> says to reach it (TLS, user).</summary>
    internal static EtcdKeyValueStore OpenStore(ClusterConfig cluster)
    {
        // The configuration loader checked the TLS files; one that changed since fails with its path.
        var tls = cluster.Tls is { } t ? EtcdTls.Load(t.Ca, t.Certificate, t.Key) : null;
        var credentials = cluster.Auth is { } a ? EtcdCredentials.Load(a.User, a.PasswordFile) : null;
        return new EtcdKeyValueStore(string.Join(',', cluster.Etcd), tls, credentials);
    }

    /// <summary>
    /// With a <c>cluster</c> section: joins the cluster through etcd within 15 s, or fails the start with the reason.
    /// The changes waiting for etcd are kept beside the state file (<see cref="WriteJournal.PathFor"/>).
    /// </summary>
    private static async Task<SharedState?> JoinClusterAsync(ClusterConfig? cluster, string statePath, ILoggerFactory logs, CancellationToken ct)
    {
        if (cluster is null) return null;
        var log = logs.CreateLogger("isotun.cluster");
        var journal = WriteJournal.Open(WriteJournal.PathFor(statePath));
        var store = OpenStore(cluster);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        try
        {
            var shared = await SharedState.JoinAsync(store, cluster.Prefix, cluster.Node, CookieSealer.KeyLength, log, journal: journal, ct: timeout.Token);
            log.LogInformation("cluster: node {Node} joined through {Etcd} (prefix {Prefix}); {Users} revoked user(s)", cluster.Node, string.Join(", ", cluster.Etcd), cluster.Prefix, shared.RevokedUsers.Count);
            return shared;
        }
        catch (Exception e) when (e is KeyValueStoreException or OperationCanceledException or InvalidDataException or InvalidOperationException)
        {
            await store.DisposeAsync();
            journal.Dispose();
            throw new InvalidOperationException($"cluster: cannot join through etcd at {string.Join(", ", cluster.Etcd)}: {(e is OperationCanceledException ? "no answer within 15 s" : e.Message)}");
        }
    }
}
