using System.Text.RegularExpressions;
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
        var doc = File.ReadAllText(RepositoryRoot.File("docs/gateway.md"));
        var block = doc[(doc.IndexOf("```sh", StringComparison.Ordinal) + 5)..];
        block = block[..block.IndexOf("```", StringComparison.Ordinal)];
        var steps = block.Split('\n').Select(l => Regex.Replace(l, @"\s+#.*$", "").Trim())
            .Where(l => l.StartsWith("./isotun ", StringComparison.Ordinal))
            .Select(l => l["./isotun ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Contains(steps, s => s is ["gateway", "--config", _, "--check"]);

        using var temp = new TempDirectory();
        foreach (var step in steps)
        {
            var args = step.ToList();
            string? redirect = null;
            if (args.IndexOf(">") is var gt and >= 0)
            {
                redirect = args[gt + 1];
                args.RemoveRange(gt, 2);
            }
            var run = await ConsoleCapture.RunAsync(temp.Path, null, [.. args]);
            Assert.True(run.ExitCode == 0, $"./isotun {string.Join(' ', step)} exited {run.ExitCode}:\n{run.Out}\n{run.Error}");
            if (redirect is not null) File.WriteAllText(temp.File(redirect), run.Out);
        }
    }
}
