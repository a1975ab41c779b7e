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
            lab.Up(TimeSpan.FromSeconds(parse.GetValue(timeout)));
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
        var port = new Option<int>("--port") { DefaultValueFactory = _ => LabLayout.ServicePort };
        var sinkPort = new Option<int>("--sink-port") { DefaultValueFactory = _ => LabLayout.SinkPort };
        var serve = new Command("serve", "The lab's demo service (text port and SHA-256 sink); used by `lab up`") { text, port, sinkPort };
        serve.Hidden = true;
        serve.SetAction(async (parse, _) =>
        {
            using var signals = new Signals();
            await LabService.RunAsync(parse.GetValue(text)!, parse.GetValue(port), parse.GetValue(sinkPort), signals.Token);
            return 0;
        });

        var loadUrl = new Argument<string>("URL");
        var loadCert = new Option<string>("--certificate", "-c") { Required = true };
        var loadKey = new Option<string>("--sslkey", "-k") { Required = true };
        var loadCa = new Option<string>("--cafile") { Required = true };
        var loadSessions = new Option<int>("--sessions") { DefaultValueFactory = _ => 1000 };
        var loadParallel = new Option<int>("--parallel") { DefaultValueFactory = _ => 32 };
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
        load.Hidden = true;
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

        command.Subcommands.Add(up);
        command.Subcommands.Add(load);
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
