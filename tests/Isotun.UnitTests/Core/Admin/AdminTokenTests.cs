using Isotun.Admin;
using Isotun.UnitTests.Core.Logs;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Admin;

public sealed class AdminTokenTests
{
    /// <summary>A token file that is gone admits nobody and says so once, not at every request (a dashboard left open
    /// asks several times a second); when it comes back it is read, and when it goes again that is said once more.</summary>
    [Fact]
    public void A_gone_token_file_is_told_once_per_change_not_per_request()
    {
        using var dir = new TempDirectory();
        var path = dir.File("admin.token");
        var log = new RecordingLogger();
        var token = new AdminToken(path, log.Factory.CreateLogger("test"));
        int Errors() => log.Lines.Count(l => l.Level == LogLevel.Error);

        for (int i = 0; i < 3; i++) Assert.Null(token.Current());
        Assert.Equal(1, Errors());
        Assert.Contains("the file is gone", log.Lines.Single().Text);

        const string secret = "a-token-of-at-least-32-characters-long";
        Isotun.Security.SecretFile.WriteAllText(path, secret + "\n", overwrite: true);
        for (int i = 0; i < 3; i++) Assert.Equal(secret, System.Text.Encoding.UTF8.GetString(token.Current()!));
        Assert.Equal(1, Errors());
        Assert.DoesNotContain(log.Lines, l => l.Text.Contains(secret));

        File.Delete(path);
        for (int i = 0; i < 3; i++) Assert.Null(token.Current());
        Assert.Equal(2, Errors());
    }
}
