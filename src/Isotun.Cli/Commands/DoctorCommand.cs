using System.CommandLine;
using Isotun.Doctor;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun doctor</c>: the host's throughput checklist, read-only. Exit 0: nothing to change; 3: see the warnings.</summary>
public static class DoctorCommand
{
    public const int SomethingToChange = 3;

    public static Command Create()
    {
        var mtu = new Option<int?>("--mtu") { Description = "The tenants' tunnel MTU, to check every interface against it" };
        var metrics = new Option<string?>("--metrics")
        {
            Description = "Also read a running server's metrics (its admin listener, e.g. http://127.0.0.1:9410/metrics): packet sizes, drops and failed handshakes per tenant",
        };
        var root = new Option<string>("--root") { Description = "Read /proc, /sys and /dev under this folder (for tests)", DefaultValueFactory = _ => "/", Hidden = true };
        var command = new Command("doctor",
            "Walk the throughput checklist on this host (TUN, MTU, NIC queues, AES instructions, interrupts, NIC model) and say what to change; "
            + "exit 0 when nothing needs changing, 3 when something does. Run it in the namespace whose interfaces matter (ip netns exec NS isotun doctor).")
        {
            mtu, metrics, root,
        };
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(mtu) is int m && (m < 576 || m > 9000))
            {
                parse.InvocationConfiguration.Error.WriteLine("isotun doctor: --mtu must be between 576 and 9000");
                return 2;
            }
            var findings = HostDoctor.Examine(new HostView(parse.GetValue(root)!), parse.GetValue(mtu)).ToList();
            if (parse.GetValue(metrics) is { } metricsUrl)
            {
                if (!Uri.TryCreate(metricsUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                {
                    parse.InvocationConfiguration.Error.WriteLine("isotun doctor: --metrics must be an absolute http(s) URL");
                    return 2;
                }
                var (scrape, error) = await MetricsDoctor.FetchAsync(url, TimeSpan.FromSeconds(5), ct);
                findings.AddRange(scrape is null
                    ? [new Finding("server", FindingLevel.Warn, $"cannot read {url}: {error}", "is the server running, and is its admin.listen this address (inside its namespace)?")]
                    : MetricsDoctor.Examine(scrape));
            }
            int width = findings.Max(f => f.Check.Length);
            foreach (var f in findings)
            {
                output.WriteLine($"{f.Check.PadRight(width)}  {Label(f.Level)}  {f.Found}");
                if (f.Advice is not null) output.WriteLine($"{new string(' ', width + 8)}-> {f.Advice}");
            }
            int warnings = findings.Count(f => f.Level == FindingLevel.Warn);
            output.WriteLine(warnings == 0 ? "nothing to change" : $"{warnings} thing{(warnings == 1 ? "" : "s")} to change");
            return warnings == 0 ? 0 : SomethingToChange;
        });
        return command;
    }

    private static string Label(FindingLevel level) => level switch
    {
        FindingLevel.Ok => "ok  ",
        FindingLevel.Info => "info",
        _ => "WARN",
    };
}
