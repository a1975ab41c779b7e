using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// The quick start of docs/gateway.md, read from the file and run as written (the `./isotun` lines; the `sudo` one
/// binds port 443 and is the gateway integration suite's) in an empty directory: every step succeeds, and the example
/// the steps make validates with its certificates.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class GatewayQuickStartTests
{
    [Fact]
    public async Task The_gateway_quick_start_steps_succeed_as_written()
    {
        var steps = DocSteps.Read(RepositoryRoot.File("docs/gateway.md"));
        Assert.Contains(steps, s => s is ["gateway", "--config", _, "--check"]);

        using var temp = new TempDirectory();
        foreach (var step in steps)
        {
            var (args, redirect) = DocSteps.SplitRedirect(step);
            var run = await ConsoleCapture.RunAsync(temp.Path, null, [.. args]);
            Assert.True(run.ExitCode == 0, $"./isotun {string.Join(' ', step)} exited {run.ExitCode}:\n{run.Out}\n{run.Error}");
            if (redirect is not null) File.WriteAllText(temp.File(redirect), run.Out);
        }
    }
}
