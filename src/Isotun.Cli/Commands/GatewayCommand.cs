using System.CommandLine;
using System.Runtime.InteropServices;
using Isotun.Gateway;
using Isotun.Gateway.Configuration;
using Isotun.Transport;

namespace Isotun.Cli.Commands;

/// <summary>
/// <c>isotun gateway --config FILE</c>: the edge gateway (SNI passthrough or TLS termination per route, PROXY v2, abuse
/// limits). SIGHUP reloads the file: a bad file is refused with every error listed and the running config stays.
/// <c>--check</c> only validates (exit 0 or 2).
/// </summary>
public static class GatewayCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "Gateway configuration file (YAML); see docs/gateway.md" };
        var check = new Option<bool>("--check") { Description = "Validate the configuration (including certificates) and exit" };
        var example = new Option<bool>("--example") { Description = "Print a commented example configuration and exit" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Debug logging" };
        var command = new Command("gateway", "Run the edge gateway: route TLS by SNI, pass through or terminate, PROXY v2, abuse limits");
        command.Options.Add(config);
        command.Options.Add(check);
        command.Options.Add(example);
        command.Options.Add(verbose);
        command.SetAction(async (parse, _) =>
        {
            // Before the first socket (a terminating route's ticket key is primed over one): relayed bytes are read and
            // passed on by the thread the kernel woke, with no hand-off to a pool thread (see IoThreads).
            IoThreads.PreferInlineCompletions();
            if (parse.GetValue(example))
            {
                Console.Out.Write(GatewayConfigLoader.Example());
                return 0;
            }

            var path = parse.GetValue(config);
            if (string.IsNullOrEmpty(path))
            {
                Console.Error.WriteLine("isotun gateway: --config FILE is required");
                return 2;
            }

            var loaded = GatewayConfigLoader.Load(path);
            if (loaded.Ok && GatewayRuntime.Build(loaded.Config!, out var buildErrors) is null) loaded = new GatewayConfigLoadResult(null, buildErrors);
            if (!loaded.Ok)
            {
                Console.Error.WriteLine($"{path}: {loaded.Errors.Count} error(s){(parse.GetValue(check) ? "" : "; the gateway was not started")}");
                foreach (var e in loaded.Errors) Console.Error.WriteLine($"  {e.Path}: {e.Message}");
                return 2;
            }

            if (parse.GetValue(check))
            {
                Console.Out.WriteLine($"{path}: ok");
                return 0;
            }

            using var signals = new Signals();
            using var logs = Logging.Create(parse, parse.GetValue(verbose));
            try
            {
                await using var gateway = new EdgeGateway(loaded.Config!, logs);
                gateway.Start();
                Linux.Hangup.Hear(); // also when started under nohup
                using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, ctx =>
                {
                    ctx.Cancel = true;
                    ThreadPool.QueueUserWorkItem(static g => g.Reload(), gateway, preferLocal: false);
                });
                await gateway.RunAsync(signals.Token);
                return 0;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"isotun gateway: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
