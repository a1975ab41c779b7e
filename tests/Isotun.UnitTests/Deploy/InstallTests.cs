using System.Diagnostics;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Deploy;

/// <summary>
/// <c>./isotun install</c> and <c>uninstall</c> into a temporary prefix, config, state and unit directory. The build
/// installed is the CLI this test run built (<c>--from</c>); a real self-contained publish (<c>deploy/publish.sh</c>) is
/// installed by the integration test <c>InstallPublishTests</c>.
/// </summary>
public sealed class InstallTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Prefix => _temp.File("usr");
    private string ConfigDir => _temp.File("etc/isotun");
    private string StateDir => _temp.File("var/lib/isotun");
    private string UnitDir => _temp.File("units");
    private string[] Dirs => ["--prefix", Prefix, "--config-dir", ConfigDir, "--state-dir", StateDir, "--unit-dir", UnitDir];

    /// <summary>The CLI build of this test run's configuration: .../bin/&lt;Configuration&gt;/net10.0/.</summary>
    private static string Build
    {
        get
        {
            var config = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;
            return RepositoryRoot.File("src", "Isotun.Cli", "bin", config, "net10.0");
        }
    }

    private static (int ExitCode, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), $"{file} {string.Join(' ', args)} did not finish");
        return (p.ExitCode, output.Result + error.Result);
    }

    private static (int ExitCode, string Output) Isotun(params string[] args) => Run(RepositoryRoot.File("isotun"), args);

    private void Install()
    {
        var (rc, output) = Isotun(["install", "--from", Build, .. Dirs]);
        Assert.True(rc == 0, output);
    }

    [Fact]
    public void Install_puts_isotun_config_and_units_in_place_and_uninstall_keeps_only_config_and_state_until_purge()
    {
        Install();
        var bin = Path.Combine(Prefix, "bin", "isotun");
        Assert.Equal(Path.Combine(Prefix, "lib", "isotun", "isotun"), new FileInfo(bin).LinkTarget);
        var version = Run(bin, "--version");
        Assert.True(version.ExitCode == 0, version.Output);

        var config = File.ReadAllText(Path.Combine(ConfigDir, "isotun.yaml"));
        Assert.Contains($"state: {StateDir}/isotun.db", config);
        Assert.Contains($"key-file: {StateDir}/cookie.key", config);
        Assert.True(File.Exists(Path.Combine(ConfigDir, "gateway.yaml")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(StateDir));

        var server = File.ReadAllText(Path.Combine(UnitDir, "isotun-server.service"));
        Assert.Contains($"ExecStart={bin} server --config {ConfigDir}/isotun.yaml\n", server);
        Assert.Contains($"ReadWritePaths={StateDir} -/run/netns\n", server);
        var gateway = File.ReadAllText(Path.Combine(UnitDir, "isotun-gateway.service"));
        Assert.Contains($"ExecStart={bin} gateway --config {ConfigDir}/gateway.yaml\n", gateway);

        // A second install replaces the program and the units, never the operator's config.
        File.AppendAllText(Path.Combine(ConfigDir, "isotun.yaml"), "# edited by the operator\n");
        Install();
        Assert.EndsWith("# edited by the operator\n", File.ReadAllText(Path.Combine(ConfigDir, "isotun.yaml")));

        var (rc, output) = Isotun(["uninstall", .. Dirs]);
        Assert.True(rc == 0, output);
        Assert.False(File.Exists(bin) || Directory.Exists(Path.Combine(Prefix, "lib", "isotun")), output);
        Assert.Empty(Directory.GetFiles(UnitDir));
        Assert.EndsWith("# edited by the operator\n", File.ReadAllText(Path.Combine(ConfigDir, "isotun.yaml")));
        Assert.True(Directory.Exists(StateDir));

        (rc, output) = Isotun(["uninstall", "--purge", .. Dirs]);
        Assert.True(rc == 0, output);
        Assert.Empty(Directory.GetFiles(_temp.Path, "*", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(Prefix, "bin")));
    }

    [SkippableFact]
    public void The_installed_units_pass_systemd_analyze_verify()
    {
        const string Tool = "/usr/bin/systemd-analyze";
        Skip.IfNot(File.Exists(Tool), $"{Tool} is missing (Debian package systemd): the units were not verified");
        Install();
        var (rc, output) = Run(Tool, "verify", Path.Combine(UnitDir, "isotun-server.service"), Path.Combine(UnitDir, "isotun-gateway.service"));
        Assert.True(rc == 0 && output.Trim().Length == 0, output);
    }

    [Theory]
    [InlineData("install", "--bogus")]
    [InlineData("install", "--prefix")]
    [InlineData("install", "--purge")]
    [InlineData("uninstall", "--from", "x")]
    [InlineData("uninstall", "--prefix", "/")]
    public void Usage_errors_exit_2(params string[] args)
    {
        var (rc, output) = Isotun(args);
        Assert.True(rc == 2, output);
    }

    [Fact]
    public void Help_describes_both_verbs()
    {
        var (rc, output) = Isotun("install", "--help");
        Assert.Equal(0, rc);
        Assert.Contains("--prefix DIR", output);
        Assert.Contains("--purge", output);
    }
}
