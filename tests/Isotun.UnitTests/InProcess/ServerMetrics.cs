using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Isotun.Metrics;

namespace Isotun.UnitTests.InProcess;

/// <summary>Reads the server's drop and auth counters per tenant, as the metrics endpoint would, through one listener for the process.</summary>
internal static class ServerMetrics
{
    private static readonly ConcurrentDictionary<(string Name, string Tenant, string Label), long> s_counts = new();
    private static readonly MeterListener s_listener = Listen();

    public static void Start() => _ = s_listener;

    public static long Drops(string tenant, DropReason reason) => s_counts.GetValueOrDefault(("isotun.tunnel.drops", tenant, reason.ToLabel()));

    public static long Admin(string result) => s_counts.GetValueOrDefault(("isotun.admin.requests", "", result));

    public static long Auth(string tenant, AuthOutcome outcome) => s_counts.GetValueOrDefault(("isotun.auth.attempts", tenant, outcome.ToLabel()));

    private static MeterListener Listen()
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == IsotunMetrics.MeterName && instrument.Name is "isotun.tunnel.drops" or "isotun.auth.attempts" or "isotun.admin.requests")
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string tenant = "", label = "";
            foreach (var tag in tags)
            {
                if (tag.Key == "tenant") tenant = tag.Value as string ?? "";
                else if (tag.Key is "reason" or "result") label = tag.Value as string ?? "";
            }
            s_counts.AddOrUpdate((instrument.Name, tenant, label), value, (_, old) => old + value);
        });
        listener.Start();
        return listener;
    }
}
