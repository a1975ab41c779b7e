using System.Net;
using Isotun.Lab;

namespace Isotun.UnitTests.Core.Lab;

/// <summary>The flood's options: its mix of kinds and its source addresses.</summary>
public class FloodPlanTests
{
    [Theory]
    [InlineData("idle=45,hello=45,head=10", 45, 45, 10)]
    [InlineData("head=1", 0, 0, 1)]
    [InlineData(" hello = 3 , idle=0 ", 0, 3, 0)]
    [InlineData("idle=1000,hello=1000,head=1000", 1000, 1000, 1000)]
    public void A_mix_is_read(string text, int idle, int hello, int head)
    {
        Assert.True(FloodMix.TryParse(text, out var mix, out var error), error);
        Assert.Equal(new FloodMix(idle, hello, head), mix);
        Assert.True(FloodMix.TryParse(mix.ToString(), out var again, out _));
        Assert.Equal(mix, again);
    }

    [Theory]
    [InlineData(null, "empty")]
    [InlineData("", "empty")]
    [InlineData("idle", "not kind=weight")]
    [InlineData("idle=1=2", "not kind=weight")]
    [InlineData("idle=-1", "not kind=weight")]
    [InlineData("idle=1001", "not kind=weight")]
    [InlineData("idle=99999999999999999999", "not kind=weight")]
    [InlineData("idle=1,", "not kind=weight")]
    [InlineData("syn=1", "unknown kind 'syn'")]
    [InlineData("idle=1,idle=2", "idle is given twice")]
    [InlineData("idle=0,head=0", "every weight is 0")]
    public void A_bad_mix_is_refused_with_its_reason(string? text, string reason)
    {
        Assert.False(FloodMix.TryParse(text, out _, out var error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void A_long_bad_part_is_quoted_short()
    {
        Assert.False(FloodMix.TryParse(new string('x', 5000) + "=1", out _, out var error));
        Assert.True(error!.Length < 200);
    }

    [Theory]
    [InlineData(45, 45, 10)]
    [InlineData(1, 0, 0)]
    [InlineData(0, 0, 7)]
    [InlineData(3, 5, 2)]
    [InlineData(90, 9, 1)]
    public void Every_run_of_total_slots_holds_the_weights_exactly_and_a_shorter_run_about_them(int idle, int hello, int head)
    {
        var mix = new FloodMix(idle, hello, head);
        for (int start = 0; start < 3 * mix.Total; start += mix.Total)
        {
            var kinds = Enumerable.Range(start, mix.Total).Select(mix.KindOf).ToList();
            Assert.Equal(idle, kinds.Count(k => k == FloodKind.Idle));
            Assert.Equal(hello, kinds.Count(k => k == FloodKind.Hello));
            Assert.Equal(head, kinds.Count(k => k == FloodKind.Head));
        }
        // Half a run (one source's 50 of a mix of 100): each kind within a few of its half share.
        int half = mix.Total / 2;
        for (int start = 0; start < 4 * mix.Total; start += half > 0 ? half : 1)
        {
            var kinds = Enumerable.Range(start, half).Select(mix.KindOf).ToList();
            Assert.InRange(kinds.Count(k => k == FloodKind.Idle), idle * half / mix.Total - 3, idle * half / mix.Total + 3);
            Assert.InRange(kinds.Count(k => k == FloodKind.Head), head * half / mix.Total - 3, head * half / mix.Total + 3);
        }
    }

    [Fact]
    public void Sources_are_the_first_host_addresses_of_the_network()
    {
        Assert.True(FloodClient.TryListSources("198.19.201.0/24", 200, out var sources, out var error), error);
        Assert.Equal(200, sources.Count);
        Assert.Equal(IPAddress.Parse("198.19.201.1"), sources[0]);
        Assert.Equal(IPAddress.Parse("198.19.201.200"), sources[^1]);
        Assert.Equal(200, sources.Distinct().Count());

        Assert.True(FloodClient.TryListSources("198.19.0.0/16", 300, out sources, out _));
        Assert.Equal(IPAddress.Parse("198.19.1.44"), sources[^1]); // carries into the third byte

        Assert.True(FloodClient.TryListSources("fd00:77::/120", 255, out sources, out _));
        Assert.Equal(IPAddress.Parse("fd00:77::1"), sources[0]);
        Assert.Equal(IPAddress.Parse("fd00:77::ff"), sources[^1]);

        Assert.True(FloodClient.TryListSources("198.19.202.4/30", 2, out sources, out _));
        Assert.Equal([IPAddress.Parse("198.19.202.5"), IPAddress.Parse("198.19.202.6")], sources);
    }

    [Theory]
    [InlineData("198.19.201.0", 1, "not a network")]
    [InlineData("nonsense/24", 1, "not a network")]
    [InlineData("198.19.201.0/24", 0, "1 to 65536")]
    [InlineData("198.19.201.0/24", 65537, "1 to 65536")]
    [InlineData("198.19.201.0/24", 255, "has 254 host addresses, not 255")]
    [InlineData("198.19.202.4/30", 3, "has 2 host addresses")]
    [InlineData("198.19.202.4/32", 1, "has 0 host addresses")]
    [InlineData("fd00:77::/128", 1, "has 0 host addresses")]
    public void Bad_sources_are_refused_with_the_reason(string network, int count, string reason)
    {
        Assert.False(FloodClient.TryListSources(network, count, out _, out var error));
        Assert.Contains(reason, error);
    }
}
