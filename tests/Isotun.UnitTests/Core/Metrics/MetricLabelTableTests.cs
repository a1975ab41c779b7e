using System.Text.RegularExpressions;
using Isotun.Metrics;

namespace Isotun.UnitTests.Core.Metrics;

/// <summary>
/// One table of label values (<see cref="ReasonLabels"/>): every value is its enum name in kebab case, the exporter
/// writes exactly those, the doctor reads them back, and the operations guide's metrics table names every one.
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
    public void The_operations_guide_names_every_value_of_each_label(string family, string label)
    {
        var values = ReasonLabels.Families.Single(f => f.Name == family && f.Label == label).Values;
        var row = File.ReadLines(Path.Combine(RepositoryRoot.Path, "docs", "operations.md"))
            .SingleOrDefault(l => l.StartsWith($"| `{family}` |", StringComparison.Ordinal));
        Assert.True(row is not null, $"docs/operations.md has no row for {family}");
        var missing = values.Where(v => !Regex.IsMatch(row!, $@"(?<![a-z-]){Regex.Escape(v)}(?![a-z-])")).ToList();
        Assert.True(missing.Count == 0, $"the {family} row of docs/operations.md does not name {label} = {string.Join(", ", missing)}");
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

        var text = exporter.Render();
        foreach (var family in ReasonLabels.Families)
        {
            var written = Regex.Matches(text, $@"^{family.Name}\{{[^}}]*\b{family.Label}=""([^""]*)""", RegexOptions.Multiline)
                .Select(m => m.Groups[1].Value).ToHashSet();
            Assert.Equal(family.Values.Order(), written.Order());
        }
    }
}
