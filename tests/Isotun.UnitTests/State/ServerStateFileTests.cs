using Isotun.UnitTests.Cli;
using Isotun.UnitTests.Core.Server;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State;

/// <summary><c>isotun server</c> with a state file it cannot use does not start: exit code 1 and the store's message.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ServerStateFileTests
{
    [Fact]
    public async Task The_server_refuses_to_start_on_a_state_file_that_is_not_a_database()
    {
        using var temp = new TempDirectory();
        // isotun.yaml for one host-namespace tenant; its state file is isotun.db beside it (the default).
        FirstStartTests.Config(temp);
        var state = temp.File("isotun.db");
        File.WriteAllText(state, string.Concat(Enumerable.Repeat("not a database\n", 100)));

        var run = await ConsoleCapture.RunAsync(temp.Path, null, "server", "--config", "isotun.yaml").WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"isotun server: state file {state}: is not an SQLite database. To start afresh, stop the server", run.Error);
        Assert.False(File.Exists(temp.File("pki/server.crt")), "nothing should be made after the state file is refused");
    }
}
