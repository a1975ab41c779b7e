namespace Isotun.UnitTests.Sites;

/// <summary>The site gateway script the docs show is the one shipped, and it stays a plain POSIX sh script.</summary>
public sealed class SiteGatewayScriptTests
{
    private static string[] Code(IEnumerable<string> lines) =>
        lines.Select(l => l.TrimEnd()).Where(l => l.Length > 0 && (!l.StartsWith('#') || l.StartsWith("#!", StringComparison.Ordinal))).ToArray();

    [Fact]
    public void The_docs_show_the_shipped_script()
    {
        var shipped = Code(File.ReadAllLines(RepositoryRoot.File("deploy", "openconnect", "site-gateway.sh")));
        var doc = File.ReadAllLines(RepositoryRoot.File("docs", "sites.md"));
        int start = Array.IndexOf(doc, "#!/bin/sh");
        Assert.True(start > 0, "docs/sites.md shows no script");
        var shown = Code(doc.Skip(start).TakeWhile(l => l != "```"));
        Assert.Equal(shipped, shown);
        Assert.Equal("#!/bin/sh", shipped[0]);
        Assert.True((File.GetUnixFileMode(RepositoryRoot.File("deploy", "openconnect", "site-gateway.sh")) & UnixFileMode.UserExecute) != 0, "the script is not executable");
    }
}
