using System.Text.Json;
using Isotun.Admin;

namespace Isotun.UnitTests.Core.Admin;

public sealed class AdminReplyTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    /// <summary>The CLI prints a refusal's reason: the API's own JSON error, else the first line of a text answer (the
    /// host filter's 421 says which setting to change), bounded and printable, else that none was given.</summary>
    [Fact]
    public void A_refusals_reason_is_the_apis_error_else_the_texts_first_line()
    {
        Assert.Equal("no such session", new AdminReply(404, Json("""{"error":"no such session"}"""), """{"error":"no such session"}""").Error);
        const string hostFilter = "this listener answers requests for its IP addresses and localhost; to reach it by a host name, list that name in admin.hosts\n";
        Assert.Equal(hostFilter.TrimEnd(), new AdminReply(421, null, hostFilter).Error);
        Assert.Equal("Bad Gateway", new AdminReply(502, null, "\r\n  Bad Gateway\r\nfrom a proxy\r\n").Error);
        Assert.Equal("a?[31mred", new AdminReply(500, null, "a\u001b[31mred").Error);
        Assert.Equal(200, new AdminReply(500, null, new string('x', 5000)).Error.Length);
        Assert.Equal("no reason given", new AdminReply(503, null, "").Error);
        Assert.Equal("no reason given", new AdminReply(500, Json("""{"error":null}"""), "  ").Error);
    }
}
