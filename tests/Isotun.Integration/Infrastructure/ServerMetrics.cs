using System.Globalization;
using Isotun.Lab;

namespace Isotun.Integration.Infrastructure;

/// <summary>Reads a server's Prometheus endpoint from inside its namespace, as an operator would with curl.</summary>
public static class ServerMetrics
{
    public static string Scrape(string ns, int port = LabLayout.AdminPort) =>
        Run.InNs(ns, "curl", "-s", "--max-time", "5", $"http://127.0.0.1:{port}/metrics").Stdout;

    /// <summary>Sum of the samples of series <paramref name="name"/> whose labels contain every filter.</summary>
    public static double Sum(string scrape, string name, params string[] filters)
    {
        double sum = 0;
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) || !filters.All(line.Contains)) continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return sum;
    }
}
