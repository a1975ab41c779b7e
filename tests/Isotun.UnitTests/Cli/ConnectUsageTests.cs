using Isotun.Client;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// `isotun connect` reads its files before it connects anywhere: a certificate, key, CA bundle or password file that
/// cannot be used is a usage error (exit 2) in one line, not a stack trace.
/// </summary>
public sealed class ConnectUsageTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("-c", "missing.crt")]
    [InlineData("--cafile", "missing-ca.crt")]
    [InlineData("--cafile", "not-pem.txt")]
    public async Task A_tls_file_that_cannot_be_used_is_a_usage_error_before_any_connection(string option, string file)
    {
        File.WriteAllText(_dir.File("not-pem.txt"), "hello\n");
        // 198.18.0.1 is never reached: the files are read first.
        var run = await ConsoleCapture.RunAsync(_dir.Path, "a-cookie\n", "connect", "https://198.18.0.1/acme", "--cookie-on-stdin", option, _dir.File(file));
        Assert.Equal((int)ClientExitCode.Usage, run.ExitCode);
        var line = Assert.Single(run.Error.Trim().Split('\n'));
        Assert.StartsWith("isotun connect: ", line);
        Assert.Contains(file, line);
    }

    [Fact]
    public async Task A_password_file_that_cannot_be_read_is_a_usage_error()
    {
        var run = await ConsoleCapture.RunAsync(_dir.Path, null, "connect", "https://198.18.0.1/acme", "--user", "alice", "--password-file", _dir.Path);
        Assert.Equal((int)ClientExitCode.Usage, run.ExitCode);
        Assert.StartsWith("isotun connect: ", Assert.Single(run.Error.Trim().Split('\n')));
    }
}
