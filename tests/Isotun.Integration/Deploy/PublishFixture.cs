using Isotun.Integration.Infrastructure;

namespace Isotun.Integration.Deploy;

/// <summary>
/// One real self-contained publish (<c>deploy/publish.sh</c>, what <c>./isotun install</c> and the Debian package
/// install) for the tests that install or package it: it takes a minute or more, so it is made once.
/// </summary>
public sealed class PublishFixture
{
    public PublishFixture()
    {
        Result = Run.Exec("bash", [Path.Combine(TestEnvironment.RepoRoot, "deploy", "publish.sh")], timeoutSeconds: 900);
        Dir = Result.Stdout.Trim();
    }

    public Run.Result Result { get; }

    /// <summary>The published build; check <see cref="AssertPublished"/> first.</summary>
    public string Dir { get; }

    public void AssertPublished()
    {
        Assert.True(Result.ExitCode == 0, Result.ToString());
        Assert.True(File.Exists(Path.Combine(Dir, "libcoreclr.so")), $"{Dir}: not self-contained");
    }
}

[CollectionDefinition(Name)]
public sealed class PublishCollection : ICollectionFixture<PublishFixture>
{
    public const string Name = "publish";
}
