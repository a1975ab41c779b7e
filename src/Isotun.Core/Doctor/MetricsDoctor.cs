using System.Globalization;
using Isotun.Metrics;

namespace Isotun.Doctor;

/// <summary>
/// The server's side of `isotun doctor --metrics URL`: reads one scrape of the server's Prometheus endpoint and
/// says, per tenant, how its traffic crosses (packet sizes), where packets are lost and why, and whether the
/// handshakes that fail point at abuse.
/// </summary>
public static class MetricsDoctor
{
    /// <summary>The most read from the endpoint; a server's scrape is a few KiB per tenant.</summary>
    public const int MaxScrapeBytes = 4 * 1024 * 1024;

    /// <summary>Below this many packets, sizes say nothing yet.</summary>
    public const long MinPackets = 100;

    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    /// <summary>Fetches one scrape (bounded in size and time); the error text instead when it cannot.</summary>
    public static async Task<(string? Text, string? Error)> FetchAsync(Uri url, TimeSpan timeout, CancellationToken ct = default)
    {
        if (url.Scheme is not ("http" or "https")) return (null, "the metrics URL must be http or https");
        try
        {
            using var http = new HttpClient { Timeout = timeout, MaxResponseContentBufferSize = MaxScrapeBytes };
            return (await http.GetStringAsync(url, ct).ConfigureAwait(false), null);
        }
        catch (HttpRequestException e) when (e.StatusCode == System.Net.HttpStatusCode.MisdirectedRequest)
        {
            return (null, $"the listener does not answer to the name {url.Host}: use its IP address, or list {url.Host} in its admin.hosts");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            return (null, e is TaskCanceledException ? $"no answer within {timeout.TotalSeconds:0} s" : e.Message);
        }
    }

    /// <summary>The samples of a Prometheus text scrape; lines that do not parse are skipped.</summary>
    public static IReadOnlyList<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            int brace = line.IndexOf('{'), space = line.LastIndexOf(' ');
            if (space <= 0 || !double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double value)) continue;
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            string name;
            if (brace > 0 && brace < space)
            {
                int close = line.LastIndexOf('}', space);
                if (close < brace) continue;
                name = line[..brace];
                foreach (var pair in line[(brace + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    int eq = pair.IndexOf('=');
                    if (eq > 0) labels[pair[..eq].Trim()] = pair[(eq + 1)..].Trim().Trim('"');
                }
            }
            else
            {
                name = line[..space].Trim();
            }
            if (name.Length == 0 || char.IsAsciiDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':')) continue;
            samples.Add(new Sample(name, labels, value));
        }
        return samples;
    }

    public static IReadOnlyList<Finding> Examine(string scrape)
    {
        var samples = Parse(scrape);
        if (!samples.Any(s => s.Name.StartsWith("isotun_", StringComparison.Ordinal)))
            return [new("server", FindingLevel.Warn, "no isotun_* series in the scrape", "point --metrics at an Isotun server's admin listener, e.g. http://127.0.0.1:9410/metrics")];
        var findings = new List<Finding>();
        foreach (var tenant in samples.Where(s => s.Name == "isotun_tunnel_bytes_total").Select(s => s.Labels.GetValueOrDefault("tenant")).OfType<string>().Distinct().Order(StringComparer.Ordinal))
        {
            findings.AddRange(Traffic(samples, tenant));
            findings.AddRange(Drops(samples, tenant));
        }
        findings.AddRange(Readers(samples));
        findings.AddRange(CryptoShare(samples));
        findings.AddRange(Handshakes(samples));
        if (findings.Count == 0) findings.Add(new("server", FindingLevel.Info, "no tenant traffic yet"));
        return findings;
    }

    private static double Sum(IReadOnlyList<Sample> samples, string name, params (string Key, string Value)[] match) =>
        samples.Where(s => s.Name == name && match.All(m => s.Labels.GetValueOrDefault(m.Key) == m.Value)).Sum(s => s.Value);

    private static IEnumerable<Finding> Traffic(IReadOnlyList<Sample> samples, string tenant)
    {
        foreach (var (direction, words) in new[] { ("rx", "from clients"), ("tx", "to clients") })
        {
            double bytes = Sum(samples, "isotun_tunnel_bytes_total", ("tenant", tenant), ("direction", direction));
            double packets = Sum(samples, "isotun_tunnel_packets_total", ("tenant", tenant), ("direction", direction));
            if (packets < MinPackets) continue;
            long size = (long)(bytes / packets);
            string found = $"{tenant} {words}: {Bytes(bytes)} in {packets:0} packets, {size} bytes each";
            yield return size < 4096
                ? new("server", FindingLevel.Info, found + ": packet by packet (stock clients, or no GSO): each costs a TLS record and a system call",
                    "Isotun clients negotiate super-packets and batching; for stock clients a larger tenant `mtu` means fewer packets per byte")
                : new("server", FindingLevel.Ok, found + ": super-packets are flowing");
        }
    }

    private static IEnumerable<Finding> Drops(IReadOnlyList<Sample> samples, string tenant)
    {
        var byReason = samples.Where(s => s.Name == "isotun_tunnel_drops_total" && s.Labels.GetValueOrDefault("tenant") == tenant && s.Value > 0)
            .GroupBy(s => s.Labels.GetValueOrDefault("reason") ?? "?")
            .Select(g => (Reason: g.Key, Count: g.Sum(s => s.Value)))
            .OrderBy(d => d.Reason, StringComparer.Ordinal);
        foreach (var (reason, count) in byReason)
        {
            string found = $"{tenant}: {count:0} packets dropped ({reason})";
            DropReason? known = ReasonLabels.TryParse(reason, out DropReason parsed) ? parsed : null;
            yield return known switch
            {
                DropReason.QueueFull => new("server", FindingLevel.Warn, found + ": a connection's send queue was full",
                    "a client could not keep up, or the host ran out of CPU (see the host checks); a tenant whose sessions carry many flows may need more `queues`"),
                DropReason.OverBudget => new("server", FindingLevel.Warn, found + ": a session's queued frames reached its memory budget",
                    "a client stopped reading (it ends after 3×DPD), or its link is long and fast: raise limits.session-memory-kib if the host has the memory"),
                DropReason.TunWriteFailed => new("server", FindingLevel.Warn, found + ": the tenant's TUN refused packets",
                    $"give tenant {tenant}'s TUN a longer queue (in its namespace: ip link set <its TUN> txqueuelen 10000) and check its uplink"),
                DropReason.SpoofedSource or DropReason.Malformed or DropReason.BadGsoHeader or DropReason.GsoNotNegotiated or DropReason.CompressedNotNegotiated
                    => new("server", FindingLevel.Info, found + ": misbehaving peers, not a capacity problem"),
                _ => new("server", FindingLevel.Info, found + ": policy or client behaviour"),
            };
        }
    }

    /// <summary>
    /// A TUN queue's reader thread busy most of its life (busy over running seconds, since the server started) carries
    /// all the packets that queue gets towards clients: more queues spread them over more threads, given the vCPUs.
    /// </summary>
    private static IEnumerable<Finding> Readers(IReadOnlyList<Sample> samples)
    {
        foreach (var running in samples.Where(s => s.Name == "isotun_tun_reader_running_seconds_total" && s.Value >= 10)
                     .OrderBy(s => s.Labels.GetValueOrDefault("tenant"), StringComparer.Ordinal).ThenBy(s => s.Labels.GetValueOrDefault("queue"), StringComparer.Ordinal))
        {
            string tenant = running.Labels.GetValueOrDefault("tenant") ?? "?", queue = running.Labels.GetValueOrDefault("queue") ?? "?";
            double busy = Sum(samples, "isotun_tun_reader_busy_seconds_total", ("tenant", tenant), ("queue", queue));
            double ratio = busy / running.Value;
            if (ratio >= BusyReader)
                yield return new("server", FindingLevel.Warn, $"{tenant}: TUN queue {queue}'s reader was busy {ratio * 100:0}% of its {running.Value:0} s",
                    "that thread is the limit towards clients: raise the tenant's `queues` (one reader thread each) and make sure there are vCPUs for them");
        }
    }

    /// <summary>A reader busier than this share of its time is a bottleneck.</summary>
    public const double BusyReader = 0.8;

    /// <summary>A crypto share above this (of the process's CPU since it started) means TLS is what the CPU does.</summary>
    public const double HighCryptoShare = 0.5;

    private static IEnumerable<Finding> CryptoShare(IReadOnlyList<Sample> samples)
    {
        double process = Sum(samples, "process_cpu_seconds_total");
        double crypto = Sum(samples, "isotun_tls_crypto_seconds_total");
        if (process < 1 || crypto <= 0) yield break; // too little work to judge
        double share = crypto / process;
        yield return share >= HighCryptoShare
            ? new("server", FindingLevel.Warn, $"TLS record work took {share * 100:0}% of the server's {process:0} s of CPU",
                "encryption is what the CPU does: check that the host checks find AES instructions (AES-NI, VAES), give the server more vCPUs, or put more `queues` on busy tenants")
            : new("server", FindingLevel.Info, $"TLS record work took {share * 100:0}% of the server's {process:0} s of CPU");
    }

    private static IEnumerable<Finding> Handshakes(IReadOnlyList<Sample> samples)
    {
        double ok = Sum(samples, "isotun_tls_handshakes_total", ("result", HandshakeResult.Ok.ToLabel()));
        double bad = Sum(samples, "isotun_tls_handshakes_total", ("result", HandshakeResult.Failed.ToLabel()))
            + Sum(samples, "isotun_tls_handshakes_total", ("result", HandshakeResult.Timeout.ToLabel()));
        if (bad >= 100 && bad > ok)
            yield return new("server", FindingLevel.Warn, $"{bad:0} TLS handshakes failed or timed out, against {ok:0} that succeeded",
                "scanners or slow clients hold the listener: put `isotun gateway` in front (handshake timeouts, rate limits, bans; see docs/gateway.md)");
    }

    private static string Bytes(double bytes) =>
        bytes >= 1 << 30 ? $"{bytes / (1 << 30):0.0} GiB" : bytes >= 1 << 20 ? $"{bytes / (1 << 20):0.0} MiB" : $"{bytes / 1024:0.0} KiB";
}
