using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Isotun.Metrics;

/// <summary>
/// Collects every instrument of the Isotun meters with a <see cref="MeterListener"/> and renders them in
/// Prometheus text format (0.0.4). Names follow Prometheus conventions: dots become underscores,
/// counters end in _total, a seconds unit adds _seconds. Observable instruments are read at scrape time.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    private static readonly double[] Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Series> _series = new();
    private readonly Lock _scrapeLock = new();

    /// <summary>Every meter whose name starts with <paramref name="meterPrefix"/> (a process that runs one server or one gateway).</summary>
    public PrometheusExporter(string meterPrefix = "Isotun") : this(m => m.Name.StartsWith(meterPrefix, StringComparison.Ordinal))
    {
    }

    /// <summary>The meters <paramref name="include"/> picks, e.g. one server's own.</summary>
    public PrometheusExporter(Func<Meter, bool> include)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!include(instrument.Meter)) return;
            _series[instrument] = new Series(instrument);
            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_series.TryGetValue(instrument, out var s)) s.Record(value, Labels(tags));
    }

    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        var parts = new string[tags.Length];
        for (int i = 0; i < tags.Length; i++)
            parts[i] = $"{tags[i].Key}=\"{Escape(Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? "")}\"";
        Array.Sort(parts, StringComparer.Ordinal);
        return string.Join(',', parts);
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    public string Render()
    {
        lock (_scrapeLock)
        {
            foreach (var s in _series.Values) if (s.Observable) s.Clear();
            _listener.RecordObservableInstruments();
            var sb = new StringBuilder(4096);
            foreach (var s in _series.Values.OrderBy(s => s.Name, StringComparer.Ordinal)) s.Render(sb);
            return sb.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    private sealed class Series(Instrument instrument)
    {
        private readonly ConcurrentDictionary<string, double> _values = new();
        private readonly ConcurrentDictionary<string, HistogramState> _histograms = new();

        public bool Observable { get; } = instrument.IsObservable;
        public bool IsHistogram { get; } = instrument.GetType().Name.StartsWith("Histogram", StringComparison.Ordinal);
        public bool IsCounter { get; } = instrument.GetType().Name.StartsWith("Counter", StringComparison.Ordinal) || instrument.GetType().Name.StartsWith("ObservableCounter", StringComparison.Ordinal);
        public bool IsObservableValue { get; } = instrument.IsObservable;

        public string Name { get; } = MakeName(instrument);

        private static string MakeName(Instrument i)
        {
            var n = i.Name.Replace('.', '_').Replace('-', '_');
            if (i.Unit == "s" && !n.EndsWith("_seconds", StringComparison.Ordinal)) n += "_seconds";
            return n;
        }

        public void Clear() => _values.Clear();

        public void Record(double value, string labels)
        {
            if (IsHistogram)
            {
                _histograms.GetOrAdd(labels, _ => new HistogramState()).Add(value);
                return;
            }
            // Observable instruments report totals; synchronous ones report increments.
            if (IsObservableValue) _values[labels] = value;
            else _values.AddOrUpdate(labels, value, (_, old) => old + value);
        }

        public void Render(StringBuilder sb)
        {
            string type = IsHistogram ? "histogram" : IsCounter ? "counter" : "gauge";
            string name = IsCounter ? Name + "_total" : Name;
            if (instrument.Description is { Length: > 0 } d) sb.Append("# HELP ").Append(name).Append(' ').Append(d).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            if (IsHistogram)
            {
                foreach (var (labels, h) in _histograms.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    h.Render(sb, Name, labels);
                return;
            }
            foreach (var (labels, v) in _values.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                sb.Append(name);
                if (labels.Length > 0) sb.Append('{').Append(labels).Append('}');
                sb.Append(' ').Append(v.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
    }

    private sealed class HistogramState
    {
        private readonly long[] _counts = new long[Buckets.Length];
        private long _count;
        private double _sum;
        private readonly Lock _lock = new();

        public void Add(double v)
        {
            lock (_lock)
            {
                for (int i = 0; i < Buckets.Length; i++) if (v <= Buckets[i]) _counts[i]++;
                _count++;
                _sum += v;
            }
        }

        public void Render(StringBuilder sb, string name, string labels)
        {
            lock (_lock)
            {
                string sep = labels.Length > 0 ? labels + "," : "";
                for (int i = 0; i < Buckets.Length; i++)
                    sb.Append(name).Append("_bucket{").Append(sep).Append("le=\"").Append(Buckets[i].ToString(CultureInfo.InvariantCulture)).Append("\"} ").Append(_counts[i]).Append('\n');
                sb.Append(name).Append("_bucket{").Append(sep).Append("le=\"+Inf\"} ").Append(_count).Append('\n');
                string l = labels.Length > 0 ? "{" + labels + "}" : "";
                sb.Append(name).Append("_sum").Append(l).Append(' ').Append(_sum.ToString(CultureInfo.InvariantCulture)).Append('\n');
                sb.Append(name).Append("_count").Append(l).Append(' ').Append(_count).Append('\n');
            }
        }
    }
}
