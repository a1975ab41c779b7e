using Isotun.Protocol.Cstp;

namespace Isotun.UnitTests.Offload;

/// <summary>The X-Isotun-Extensions header: tolerant of spacing and case, deaf to what it does not know, bounded.</summary>
public class IsotunExtensionsTests
{
    public static TheoryData<string?, IsotunExtension> Values() => new()
    {
        { "batch, gso", IsotunExtension.Batch | IsotunExtension.Gso },
        { "gso,batch", IsotunExtension.Batch | IsotunExtension.Gso },
        { "  batch  ", IsotunExtension.Batch },
        { "GSO", IsotunExtension.Gso },
        { "Batch, Gso", IsotunExtension.Batch | IsotunExtension.Gso },
        { "batch, zstd, gso, queues=4", IsotunExtension.Batch | IsotunExtension.Gso },
        { "batch, gso, queues", IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Queues },
        { "QUEUES", IsotunExtension.Queues },
        { "batch, gso, uso", IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Uso },
        { "batch,batch", IsotunExtension.Batch },
        { ",,, ,", IsotunExtension.None },
        { "batchy, gso2, g so", IsotunExtension.None },
        { "batch;gso", IsotunExtension.None },
        { "", IsotunExtension.None },
        { null, IsotunExtension.None },
        { "batch, gso, " + new string('x', 300), IsotunExtension.None }, // over 256 characters: ignored whole
    };

    [Theory]
    [MemberData(nameof(Values))]
    public void Parse(string? value, IsotunExtension expected) => Assert.Equal(expected, IsotunExtensions.Parse(value));

    [Theory]
    [InlineData(IsotunExtension.None, "")]
    [InlineData(IsotunExtension.Batch, "batch")]
    [InlineData(IsotunExtension.Gso, "gso")]
    [InlineData(IsotunExtension.Batch | IsotunExtension.Gso, "batch, gso")]
    [InlineData(IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Queues, "batch, gso, queues")]
    [InlineData(IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Uso | IsotunExtension.Queues, "batch, gso, uso, queues")]
    public void Format_and_round_trip(IsotunExtension value, string text)
    {
        Assert.Equal(text, IsotunExtensions.Format(value));
        Assert.Equal(value, IsotunExtensions.Parse(IsotunExtensions.Format(value)));
    }

    [Theory]
    [InlineData("1", 1, 16, 1)]
    [InlineData("16", 1, 16, 16)]
    [InlineData("4", 2, 16, 4)]
    [InlineData("17", 1, 16, null)]
    [InlineData("0", 1, 16, null)]
    [InlineData("1", 2, 16, null)]
    [InlineData("-1", 1, 16, null)]
    [InlineData("+2", 1, 16, null)]
    [InlineData(" 2", 1, 16, null)]
    [InlineData("2 ", 1, 16, null)]
    [InlineData("0x2", 1, 16, null)]
    [InlineData("99999999999", 1, 16, null)]
    [InlineData("", 1, 16, null)]
    [InlineData(null, 1, 16, null)]
    public void Queue_counts_and_indexes_are_plain_bounded_numbers(string? value, int min, int max, int? expected) =>
        Assert.Equal(expected, IsotunExtensions.ParseCount(value, min, max));

    [Fact]
    public void The_gso_frame_type_is_a_known_frame_type()
    {
        var frame = new byte[CstpFrame.HeaderLength + 3];
        CstpFrame.Write(frame, CstpPacketType.IsotunGso, [1, 2, 3]);
        Assert.Equal(0x40, frame[6]);
        Assert.Equal(CstpParseResult.Ok, CstpFrame.TryParseHeader(frame, CstpFrame.MaxPayloadLength, out var header));
        Assert.Equal((CstpPacketType.IsotunGso, 3), (header.Type, header.PayloadLength));
    }
}
