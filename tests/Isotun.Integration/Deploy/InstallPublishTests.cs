using Isotun.Integration.Infrastructure;

namespace Isotun.Integration.Deploy;

/// <summary>
/// `./isotun install` of a real self-contained publish into a temporary prefix (the unit tests install the build they
/// already have), then uninstall --purge. The installed program must run without the SDK's dotnet on the PATH.
/// </summary>
[Collection(PublishCollection.Name)]
public sealed class InstallPublishTests(PublishFixture publish)
{
    [Fact]
    public void Install_puts_a_self_contained_isotun_on_the_path_and_uninstall_purge_removes_everything()
    {
        publish.AssertPublished();
        var dir = Path.Combine(Path.GetTempPath(), $"isotun-install-{Environment.ProcessId}");
        string[] dirs = ["--prefix", Path.Combine(dir, "usr"), "--config-dir", Path.Combine(dir, "etc"),
            "--state-dir", Path.Combine(dir, "state"), "--unit-dir", Path.Combine(dir, "units")];
        var wrapper = Path.Combine(TestEnvironment.RepoRoot, "isotun");
        try
        {
            var install = Run.Exec(wrapper, ["install", "--from", publish.Dir, .. dirs]);
            Assert.True(install.ExitCode == 0, install.ToString());
            var bin = Path.Combine(dir, "usr", "bin", "isotun");
            Assert.True(File.Exists(Path.Combine(dir, "usr", "lib", "isotun", "libcoreclr.so")), "not self-contained");
            var version = Run.Exec("env", ["-i", "PATH=/usr/bin:/bin", bin, "--version"]);
            Assert.True(version.ExitCode == 0, version.ToString());
            var validate = Run.Exec(bin, ["config", "validate", Path.Combine(dir, "etc", "isotun.yaml")]);
            Assert.Equal(2, validate.ExitCode); // the example names PKI and password files not made yet
            Assert.Contains("password-file", validate.Stderr);

            var uninstall = Run.Exec(wrapper, ["uninstall", "--purge", .. dirs]);
            Assert.True(uninstall.ExitCode == 0, uninstall.ToString());
            Assert.Empty(Directory.GetFiles(dir, "*", SearchOption.AllDirectories));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
