using Isotun.Integration.Infrastructure;
using Xunit.Abstractions;

namespace Isotun.Integration.Interop;

/// <summary>docs/interop.md names the versions the matrix was proven with; this keeps it honest when the packages move.</summary>
public sealed class InteropVersionTests(ITestOutputHelper output)
{
    private static string Doc => File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "docs", "interop.md"));

    [SkippableFact]
    public void The_openconnect_under_test_is_the_one_docs_interop_md_lists()
    {
        Skip.If(InteropEnvironment.OpenconnectPath is null, "openconnect is not installed (apt-get install openconnect, or run .ci/install-deps)");
        var version = InteropEnvironment.OpenconnectVersion;
        output.WriteLine(version);
        Assert.True(Doc.Contains($"`{version}`", StringComparison.Ordinal), $"docs/interop.md does not list `{version}`: rerun the interop tests and update its version table");
    }

    [SkippableFact]
    public void The_ocserv_under_test_is_the_one_docs_interop_md_lists()
    {
        Skip.If(InteropEnvironment.OcservPath is null, "ocserv is not installed (apt-get install ocserv, or run .ci/install-deps)");
        var version = InteropEnvironment.OcservVersion;
        output.WriteLine(version);
        Assert.True(Doc.Contains($"`{version}`", StringComparison.Ordinal), $"docs/interop.md does not list `{version}`: rerun the interop tests and update its version table");
    }
}
