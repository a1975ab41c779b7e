using System.CommandLine;
using Isotun.Lab;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun lab up|down|status</c>: the demo in network namespaces (needs root).</summary>
public static class LabCommands
{
    public static Command Create()
    {
        var command = new Command("lab", "Build a demo (server, client, service) in network namespaces on this machine; needs root");
        var dir = new Option<string>("--dir") { Description = "Where the lab keeps its files", DefaultValueFactory = _ => ".isotun/lab" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the tunnel", DefaultValueFactory = _ => 60 };
        var keep = new Option<bool>("--keep-files") { Description = "Keep the lab directory (PKI, config, logs)" };

        var up = new Command("up", "Create namespaces and veths, write PKI and config, start service, server and client, show traffic") { dir, timeout };
        up.SetAction(parse => Run(() =>
        {
            var lab = Make(parse.GetValue(dir)!);
            // Ctrl-C (or a TERM) while it builds: it takes down what it made instead of leaving it behind.
            using var signals = new Signals();
            lab.Up(TimeSpan.FromSeconds(parse.GetValue(timeout)), signals.Token);
            var l = lab.Layout;
            Console.WriteLine();
            Console.WriteLine("The lab is up. Try:");
            Console.WriteLine("  ./isotun lab check      # the pings both ways and the fetch from the service, again");
            var config = Path.GetRelativePath(Environment.CurrentDirectory, l.ConfigPath);
            if (config.StartsWith("..", StringComparison.Ordinal)) config = l.ConfigPath;
            Console.WriteLine($"  ./isotun sessions --config {config}   # who is connected (also status, kick, revoke, reload)");
            Console.WriteLine($"  ip netns exec {l.ServerNs} ./isotun doctor --metrics http://127.0.0.1:{LabLayout.AdminPort}/metrics");
            Console.WriteLine("  ./isotun lab status;  ./isotun lab down");
            Console.WriteLine($"Logs: {l.LogDir}");
        }));

        var down = new Command("down", "Stop the lab's processes and remove its namespaces and files") { dir, keep };
        down.SetAction(parse => Run(() =>
        {
            Make(parse.GetValue(dir)!).Down(parse.GetValue(keep));
            Console.WriteLine("lab removed");
        }));

        var status = new Command("status", "Show the lab's namespaces, processes and tunnel address") { dir };
        status.SetAction(parse => Run(() =>
        {
            foreach (var (what, state) in Make(parse.GetValue(dir)!).Status())
                Console.WriteLine($"{what,-32} {state}");
        }));

        var check = new Command("check", "Ping both ways through the lab's tunnel (IPv4 and IPv6) and fetch from the service, as `up` does") { dir };
        check.SetAction(parse => Run(() => Make(parse.GetValue(dir)!).Check()));

        var text = new Option<string>("--text") { Description = "Line to answer on the text port", DefaultValueFactory = _ => "hello" };
        var port = new Option<int>("--port") { Description = "Port of the text answer", DefaultValueFactory = _ => LabLayout.ServicePort };
        var sinkPort = new Option<int>("--sink-port") { Description = "Port that reads everything sent and answers its SHA-256", DefaultValueFactory = _ => LabLayout.SinkPort };
        var serve = new Command("serve", "The lab's demo service (text port and SHA-256 sink); used by `lab up`") { text, port, sinkPort };
        serve.SetAction(async (parse, _) =>
        {
            using var signals = new Signals();
            await LabService.RunAsync(parse.GetValue(text)!, parse.GetValue(port), parse.GetValue(sinkPort), signals.Token);
            return 0;
        });

        var loadUrl = new Argument<string>("URL") { Description = "The server, with its tenant's path (https://HOST/TENANT)" };
        var loadCert = new Option<string>("--certificate", "-c") { Description = "Client certificate (PEM) every session logs in with", Required = true };
        var loadKey = new Option<string>("--sslkey", "-k") { Description = "Its private key (PEM)", Required = true };
        var loadCa = new Option<string>("--cafile") { Description = "CA that the server's certificate must chain to", Required = true };
        var loadSessions = new Option<int>("--sessions") { Description = "Sessions to open", DefaultValueFactory = _ => 1000 };
        var loadParallel = new Option<int>("--parallel") { Description = "Logins under way at once", DefaultValueFactory = _ => 32 };
        var loadHold = new Option<int>("--hold") { Description = "Seconds to keep the sessions open", DefaultValueFactory = _ => 20 };
        var loadStorm = new Option<bool>("--reconnect-storm") { Description = "Once all are up, drop every connection at once and bring all back with their cookies; report the time" };
        var loadTraffic = new Option<int?>("--traffic")
        {
            Description = "Move data for the hold: each session sends this many ICMP echo requests a second to its tenant's gateway (answered behind the server's TUN) and answers DPD; 0 only answers DPD and sends keepalives",
        };
        var loadPacket = new Option<int>("--packet-bytes") { Description = "Size of each echo packet, IP header included", DefaultValueFactory = _ => 1000 };
        var loadTimed = new Option<int>("--timed-logins") { Description = "Instead: log in this many times one after another (after one warm-up login), each timed and logged off; report the slowest" };
        var loadInterval = new Option<int>("--login-interval-ms") { Description = "Pause between timed logins", DefaultValueFactory = _ => 1000 };
        var load = new Command("load", "Open many sessions (certificate login, no TUN), idle or moving data, or time logins; for benchmarks")
        {
            loadUrl, loadCert, loadKey, loadCa, loadSessions, loadParallel, loadHold, loadStorm, loadTraffic, loadPacket, loadTimed, loadInterval,
        };
        load.SetAction(async (parse, _) =>
        {
            using var signals = new Signals();
            var options = new Isotun.Client.ClientOptions
            {
                Server = new Uri(parse.GetValue(loadUrl)!),
                CertificateFile = parse.GetValue(loadCert),
                KeyFile = parse.GetValue(loadKey),
                CaFile = parse.GetValue(loadCa),
            };
            if (parse.GetValue(loadTimed) is > 0 and var timed)
                return await LoadClient.TimeLoginsAsync(options, timed, TimeSpan.FromMilliseconds(Math.Max(0, parse.GetValue(loadInterval))), Console.WriteLine, signals.Token);
            int pps = parse.GetValue(loadTraffic) ?? 0, bytes = parse.GetValue(loadPacket);
            if (pps < 0 || bytes is < LoadTraffic.MinPacketBytes or > LoadTraffic.MaxPacketBytes)
            {
                Console.Error.WriteLine($"isotun lab load: --traffic must be 0 or more, --packet-bytes {LoadTraffic.MinPacketBytes} to {LoadTraffic.MaxPacketBytes}");
                return 2;
            }
            return await LoadClient.RunAsync(options, parse.GetValue(loadSessions), parse.GetValue(loadParallel),
                TimeSpan.FromSeconds(parse.GetValue(loadHold)), Console.WriteLine, signals.Token, parse.GetValue(loadStorm),
                parse.GetValue(loadTraffic) is null ? null : (pps, bytes));
        });

        var floodTarget = new Argument<string>("TARGET") { Description = "The listener, ADDRESS:PORT" };
        var floodSources = new Option<string>("--sources") { Description = "Network whose first host addresses the connections come from (they must be this host's)", Required = true };
        var floodCount = new Option<int>("--source-count") { Description = "How many of its addresses", DefaultValueFactory = _ => 200 };
        var floodPer = new Option<int>("--per-source") { Description = "Connections from each address", DefaultValueFactory = _ => 50 };
        var floodMix = new Option<string>("--mix") { Description = "Weights of the kinds: idle (sends nothing), hello (part of a ClientHello, a byte now and then), head (TLS, then part of a request head, a byte now and then)", DefaultValueFactory = _ => FloodMix.Default.ToString() };
        var floodHold = new Option<int>("--hold") { Description = "Seconds to hold the flood, opening again what the server closes", DefaultValueFactory = _ => 60 };
        var floodParallel = new Option<int>("--parallel") { Description = "Connections being opened at once", DefaultValueFactory = _ => 256 };
        var flood = new Command("flood", "Hold many connections from many source addresses against a TLS listener, slowloris style; for benchmarks")
        {
            floodTarget, floodSources, floodCount, floodPer, floodMix, floodHold, floodParallel,
        };
        flood.SetAction(async (parse, _) =>
        {
            var errors = new List<string>();
            if (!System.Net.IPEndPoint.TryParse(parse.GetValue(floodTarget)!, out var target) || target.Port == 0) errors.Add("TARGET must be ADDRESS:PORT");
            if (!FloodClient.TryListSources(parse.GetValue(floodSources)!, parse.GetValue(floodCount), out var sources, out var sourceError)) errors.Add("--sources: " + sourceError);
            if (!FloodMix.TryParse(parse.GetValue(floodMix), out var mix, out var mixError)) errors.Add("--mix: " + mixError);
            if (parse.GetValue(floodPer) < 1 || parse.GetValue(floodHold) < 1 || parse.GetValue(floodParallel) < 1) errors.Add("--per-source, --hold and --parallel must be 1 or more");
            foreach (var e in errors) Console.Error.WriteLine($"isotun lab flood: {e}");
            if (errors.Count > 0) return 2;
            using var signals = new Signals();
            var plan = new FloodPlan(target!, sources, parse.GetValue(floodPer), mix, TimeSpan.FromSeconds(parse.GetValue(floodHold))) { Parallel = parse.GetValue(floodParallel) };
            return await FloodClient.RunAsync(plan, Console.WriteLine, signals.Token);
        });

        command.Subcommands.Add(up);
        command.Subcommands.Add(load);
        command.Subcommands.Add(flood);
        command.Subcommands.Add(down);
        command.Subcommands.Add(status);
        command.Subcommands.Add(check);
        command.Subcommands.Add(serve);
        return command;
    }

    private static DemoLab Make(string dir) =>
        new(LabLayout.Default(Path.GetFullPath(dir)), Environment.ProcessPath!, line => Console.WriteLine("lab: " + line));

    private static int Run(Action action)
    {
        if (DemoLab.Preflight() is { } problem)
        {
            Console.Error.WriteLine($"isotun lab: {problem}");
            return 1;
        }
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException)
        {
            Console.Error.WriteLine($"isotun lab: {e.Message}");
            return 1;
        }
    }
}
