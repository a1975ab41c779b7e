namespace Isotun.UnitTests.Cli;

/// <summary>Every command's --help says what it takes, the benchmark helpers' included.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class HelpTests
{
    [Theory]
    [InlineData("lab serve", "--sink-port")]
    [InlineData("lab load", "--sessions")]
    [InlineData("lab load", "--reconnect-storm")]
    [InlineData("lab flood", "--per-source")]
    [InlineData("lab up", "--timeout")]
    [InlineData("lab down", "--keep-files")]
    public async Task A_commands_help_lists_its_options(string command, string option)
    {
        var r = await ConsoleCapture.RunAsync(Path.GetTempPath(), null, [.. command.Split(' '), "--help"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(option, r.Out);
    }

    [Fact]
    public async Task The_lab_lists_its_benchmark_helpers()
    {
        var r = await ConsoleCapture.RunAsync(Path.GetTempPath(), null, "lab", "--help");
        foreach (var verb in new[] { "serve", "load", "flood" }) Assert.Contains($"  {verb} ", r.Out);
    }
}
