using System.Text.RegularExpressions;
using Isotun.Gateway;
using Isotun.Metrics;
using Isotun.Transport.Listening;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>
/// One table of label values (<see cref="ReasonLabels"/>): every value is its enum name in kebab case, the exporter
/// writes exactly those, the doctor reads them back, and the metrics tables of the docs name every one.
/// </summary>
public class MetricLabelTableTests
{
    public static TheoryData<string, string> Families()
    {
        var data = new TheoryData<string, string>();
        foreach (var f in ReasonLabels.Families) data.Add(f.Name, f.Label);
        return data;
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void The_docs_name_every_value_of_each_label(string family, string label)
    {
        var f = ReasonLabels.Families.Single(f => f.Name == family && f.Label == label);
        var row = File.ReadLines(Path.Combine(RepositoryRoot.Path, "docs", f.Doc))
            .SingleOrDefault(l => l.StartsWith($"| `{family}` |", StringComparison.Ordinal));
        Assert.True(row is not null, $"docs/{f.Doc} has no row for {family}");
        var missing = f.Values.Where(v => !Regex.IsMatch(row!, $@"(?<![a-z-]){Regex.Escape(v)}(?![a-z-])")).ToList();
        Assert.True(missing.Count == 0, $"the {family} row of docs/{f.Doc} does not name {label} = {string.Join(", ", missing)}");
    }

    [Fact]
    public void A_label_is_the_enum_name_in_kebab_case_and_reads_back()
    {
        Assert.Equal("queue-full", DropReason.QueueFull.ToLabel());
        Assert.Equal("compressed-not-negotiated", DropReason.CompressedNotNegotiated.ToLabel());
        Assert.Equal("no-data", CloseReason.NoData.ToLabel());
        Assert.Equal("resumed", HandshakeKind.Resumed.ToLabel());
        foreach (var value in Enum.GetValues<DropReason>())
        {
            Assert.True(ReasonLabels.TryParse(value.ToLabel(), out DropReason back));
            Assert.Equal(value, back);
        }
        Assert.False(ReasonLabels.TryParse("no-such-reason", out DropReason _));
        Assert.Equal("other", ((DropReason)999).ToLabel());
    }

    [Fact]
    public void The_exporter_writes_the_labels_of_the_table()
    {
        using var metrics = new IsotunMetrics();
        using var exporter = metrics.Exporter();
        foreach (var r in Enum.GetValues<DropReason>()) metrics.Drop("acme", r);
        foreach (var o in Enum.GetValues<AuthOutcome>()) metrics.Auth("acme", o);
        foreach (var c in Enum.GetValues<CloseReason>()) metrics.Closed(c);
        foreach (var k in Enum.GetValues<HandshakeKind>()) metrics.Handshake(HandshakeResult.Ok, TimeSpan.FromMilliseconds(3), k);
        metrics.Handshake(HandshakeResult.Failed, TimeSpan.FromMilliseconds(3));
        metrics.Handshake(HandshakeResult.Timeout, TimeSpan.FromMilliseconds(3));
        foreach (var a in Enum.GetValues<AdminResult>()) metrics.AdminRequest(a);
        foreach (var s in Enum.GetValues<BanScope>()) metrics.LoginBan(s);
        foreach (var p in Enum.GetValues<ProxyResult>()) metrics.ProxyConnection(p);
        foreach (var l in Enum.GetValues<ListenerName>())
        {
            metrics.ListenerRefused(l, AdmissionRefusal.GlobalCap);
            metrics.ListenerRefused(l, AdmissionRefusal.SourceCap);
            foreach (var e in Enum.GetValues<AcceptFailure>()) metrics.AcceptError(l, e);
        }
        AssertWritten(exporter.Render(), "isotun_gateway_");
    }

    [Fact]
    public void The_gateway_exporter_writes_the_labels_of_the_table()
    {
        using var metrics = new GatewayMetrics();
        using var exporter = new PrometheusExporter(m => m == metrics.Meter);
        foreach (var o in Enum.GetValues<HelloOutcome>()) metrics.Hello(o);
        foreach (var r in Enum.GetValues<GatewayRejection>()) metrics.Rejected(r);
        foreach (var e in Enum.GetValues<AcceptFailure>()) metrics.AcceptError(e);
        foreach (var h in Enum.GetValues<GatewayHandshake>()) metrics.Handshake("r", h, TimeSpan.FromMilliseconds(2));
        foreach (var k in Enum.GetValues<HandshakeKind>()) metrics.Handshake("r", GatewayHandshake.Ok, TimeSpan.FromMilliseconds(2), k);
        foreach (var c in Enum.GetValues<RelayClose>()) metrics.Closed("r", c);
        foreach (var m in Enum.GetValues<ConnectionMode>()) metrics.Active(m, 1);
        metrics.Reload(true);
        metrics.Reload(false);
        metrics.Sources = () => (7, 3);
        var text = exporter.Render();
        // Only the gateway's families: a family of the server has a name outside it.
        AssertWritten(text, "isotun_gateway_", gatewayOnly: true);
        // The admission table's series, by the names the docs give them.
        Assert.Matches(@"(?m)^isotun_gateway_sources_tracked 7$", text);
        Assert.Matches(@"(?m)^isotun_gateway_sources_overflow_total 3$", text);
    }

    private static void AssertWritten(string text, string gatewayPrefix, bool gatewayOnly = false)
    {
        foreach (var family in ReasonLabels.Families.Where(f => f.Name.StartsWith(gatewayPrefix, StringComparison.Ordinal) == gatewayOnly))
        {
            var written = Regex.Matches(text, $@"^{family.Name}\{{[^}}]*\b{family.Label}=""([^""]*)""", RegexOptions.Multiline)
                .Select(m => m.Groups[1].Value).ToHashSet();
            Assert.Equal(family.Values.Order(), written.Order());
        }
    }
}
