using System.Collections;
using Isotun.Cli;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// Which environment `isotun server` re-executes itself with. The re-execution itself is shown on a real server
/// process in the integration suite (its environment, arguments and PID).
/// </summary>
public sealed class RuntimeEnvironmentTests
{
    private static Hashtable Env(params (string Key, string Value)[] entries)
    {
        var table = new Hashtable();
        foreach (var (k, v) in entries) table[k] = v;
        return table;
    }

    [Fact]
    public void A_server_without_the_budget_gets_it_and_keeps_everything_else()
    {
        var wanted = RuntimeEnvironment.Wanted(["server", "--config", "x.yaml"], Env(("PATH", "/usr/bin"), ("NOTIFY_SOCKET", "/run/n")));
        Assert.NotNull(wanted);
        Assert.Equal(["DOTNET_GCgen0size=0x400000", "NOTIFY_SOCKET=/run/n", "PATH=/usr/bin"], wanted!.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("DOTNET_GCgen0size", "0")]
    [InlineData("DOTNET_GCgen0size", "0x1000000")]
    [InlineData("COMPlus_GCgen0size", "0x800000")]
    public void An_operators_own_setting_is_left_alone(string key, string value) =>
        Assert.Null(RuntimeEnvironment.Wanted(["server", "--config", "x.yaml"], Env((key, value))));

    [Theory]
    [InlineData("connect")]
    [InlineData("gateway")]
    [InlineData("doctor")]
    [InlineData("--help")]
    public void Other_commands_run_as_they_are(string verb) =>
        Assert.Null(RuntimeEnvironment.Wanted([verb], Env(("PATH", "/usr/bin"))));

    /// <summary>The global --log-format may come before the verb; the server still gets its settings.</summary>
    [Theory]
    [InlineData("--log-format", "json", "server", "--config", "x.yaml")]
    [InlineData("--log-format=json", "server")]
    public void The_server_after_the_log_format_option_is_still_the_server(params string[] args) =>
        Assert.NotNull(RuntimeEnvironment.Wanted(args, Env(("PATH", "/usr/bin"))));

    [Theory]
    [InlineData("--log-format", "json", "connect")]
    [InlineData("--log-format", "server")] // "server" is the option's value here (refused by the parser)
    public void Other_commands_after_the_log_format_option_run_as_they_are(params string[] args) =>
        Assert.Null(RuntimeEnvironment.Wanted(args, Env(("PATH", "/usr/bin"))));

    [Fact]
    public void No_arguments_run_as_they_are() => Assert.Null(RuntimeEnvironment.Wanted([], Env()));
}
