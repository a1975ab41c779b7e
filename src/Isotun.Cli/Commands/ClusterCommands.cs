using System.CommandLine;
using Isotun.Config;
using Isotun.Server.Configuration;
using Isotun.State.Cluster;

namespace Isotun.Cli.Commands;

/// <summary>
/// <c>isotun cluster</c>: the tenants a cluster shares (<c>cluster.share-tenants</c>), published to and read from its
/// etcd with a node's configuration (its <c>cluster</c> section says how to reach etcd).
/// </summary>
public static class ClusterCommands
{
    private const int Ok = 0;
    private const int Failed = 1;
    private const int ConfigError = 2;
    private const int Conflict = 3;

    public static Command Create()
    {
        var command = new Command("cluster", "Publish or show the tenants that the nodes of a cluster share (cluster.share-tenants)");
        command.Subcommands.Add(CreatePush());
        command.Subcommands.Add(CreateShow());
        return command;
    }

    private static Option<string> ConfigOption() =>
        new("--config", "-c") { Description = "A node's configuration file: its cluster section says how to reach etcd, and relative paths in the tenants are read from its directory", Required = true };

    private static Command CreatePush()
    {
        var file = new Argument<string>("FILE") { Description = "A YAML file with one key, tenants, written as in a server's configuration" };
        var config = ConfigOption();
        var expect = new Option<long?>("--expect-revision")
        {
            Description = "Publish only if the tenants in the cluster are still those of this revision (as `isotun cluster show-tenants` printed it; 0: only if none were published)",
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Check the file against this node's files, and publish nothing" };
        var command = new Command("push-tenants", "Check a tenants file and publish it to the cluster: every node applies it at once, as a reload would");
        command.Arguments.Add(file);
        command.Options.Add(config);
        command.Options.Add(expect);
        command.Options.Add(dryRun);
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var path = parse.GetValue(file)!;
            if (LoadCluster(parse.GetValue(config)!, error) is not var (cluster, configPath)) return ConfigError;
            if (!ConfigFile.TryRead(path, ServerConfigLoader.MaxSharedTenantsBytes,
                    $"larger than {ServerConfigLoader.MaxSharedTenantsBytes / 1024} KiB, the most one value in the cluster's store holds", out var yaml, out _, out var unreadable))
            {
                error.WriteLine(unreadable);
                return ConfigError;
            }
            var read = ServerConfigLoader.ParseTenants(yaml, configPath);
            if (!read.Ok)
            {
                error.WriteLine($"{path}: {read.Errors.Count} error{(read.Errors.Count == 1 ? "" : "s")}; nothing was published");
                foreach (var e in read.Errors) error.WriteLine($"  {e.Path}: {e.Message}");
                return ConfigError;
            }
            var names = string.Join(", ", read.Tenants!.Select(t => t.Name));
            if (parse.GetValue(dryRun))
            {
                output.WriteLine($"{path}: ok, {read.Tenants!.Count} tenant(s): {names}; nothing was published (--dry-run)");
                return Ok;
            }
            return await WithStoreAsync(cluster, error, ct, async (store, call) =>
            {
                var result = await SharedTenants.PublishAsync(store, cluster.Prefix, yaml, parse.GetValue(expect), call);
                if (!result.Succeeded)
                {
                    var now = await SharedTenants.ReadAsync(store, cluster.Prefix, call);
                    error.WriteLine($"not published: the tenants in the cluster are {(now is null ? "none" : $"of revision {now.Revision}")}, not of revision {parse.GetValue(expect)}; see them with `isotun cluster show-tenants`, then push again");
                    return Conflict;
                }
                output.WriteLine($"published {read.Tenants!.Count} tenant(s) ({names}) at revision {result.Revision}; every node applies them now (`isotun status` on a node shows cluster.tenants)");
                return Ok;
            });
        });
        return command;
    }

    private static Command CreateShow()
    {
        var config = ConfigOption();
        var command = new Command("show-tenants", "Print the tenants published in the cluster, after a comment with their revision");
        command.Options.Add(config);
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (LoadCluster(parse.GetValue(config)!, error) is not var (cluster, _)) return ConfigError;
            return await WithStoreAsync(cluster, error, ct, async (store, call) =>
            {
                if (await SharedTenants.ReadAsync(store, cluster.Prefix, call) is not { } tenants)
                {
                    error.WriteLine($"no tenants were published under {cluster.Prefix}; publish them with `isotun cluster push-tenants FILE`");
                    return Failed;
                }
                output.WriteLine($"# revision {tenants.Revision}");
                output.Write(tenants.Yaml.EndsWith('\n') ? tenants.Yaml : tenants.Yaml + "\n");
                return Ok;
            });
        });
        return command;
    }

    /// <summary>The node configuration's cluster section, or null after printing why there is none.</summary>
    private static (ClusterConfig Cluster, string ConfigPath)? LoadCluster(string path, TextWriter error)
    {
        var loaded = ServerConfigLoader.Load(path);
        if (!loaded.Ok)
        {
            error.WriteLine($"{path}: {loaded.Errors.Count} error(s)");
            foreach (var e in loaded.Errors) error.WriteLine($"  {e.Path}: {e.Message}");
            return null;
        }
        if (loaded.Config!.Cluster is not { } cluster)
        {
            error.WriteLine($"{path}: has no cluster section: a server on its own reads its tenants from its file");
            return null;
        }
        return (cluster, loaded.Config.SourcePath);
    }

    /// <summary>Runs <paramref name="act"/> against the cluster's etcd, given 15 s; a store that cannot be reached is one line on stderr.</summary>
    private static async Task<int> WithStoreAsync(ClusterConfig cluster, TextWriter error, CancellationToken ct, Func<IKeyValueStore, CancellationToken, Task<int>> act)
    {
        await using var store = ServerCommand.OpenStore(cluster);
        using var call = CancellationTokenSource.CreateLinkedTokenSource(ct);
        call.CancelAfter(TimeSpan.FromSeconds(15));
        try
        {
            return await act(store, call.Token);
        }
        catch (Exception e) when (e is KeyValueStoreException or InvalidOperationException or IOException or OperationCanceledException)
        {
            error.WriteLine($"the cluster's store at {string.Join(", ", cluster.Etcd)} cannot be reached: {(e is OperationCanceledException ? "no answer within 15 s" : e.Message)}");
            return Failed;
        }
    }
}
