using System.CommandLine;
using Isotun.Cli.Commands;

namespace Isotun.Cli;

/// <summary>The <c>isotun</c> command tree, built once here so tests drive the same verbs as the binary.</summary>
public static class IsotunCli
{
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("Isotun: a multi-tenant VPN over TLS that speaks the OpenConnect (AnyConnect/CSTP) protocol");
        root.Options.Add(Logging.Format);
        root.Subcommands.Add(ServerCommand.Create());
        root.Subcommands.Add(GatewayCommand.Create());
        root.Subcommands.Add(ConnectCommand.Create());
        root.Subcommands.Add(LabCommands.Create());
        root.Subcommands.Add(PkiCommands.Create());
        root.Subcommands.Add(UserCommands.Create());
        root.Subcommands.Add(ConfigCommands.Create());
        root.Subcommands.Add(ClusterCommands.Create());
        root.Subcommands.Add(DoctorCommand.Create());
        foreach (var verb in AdminCommands.Create()) root.Subcommands.Add(verb);
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; a usage error (unknown option, missing argument) exits with 2.</summary>
    public static async Task<int> RunAsync(string[] args, InvocationConfiguration configuration)
    {
        var parse = CreateRoot().Parse(args);
        int rc = await parse.InvokeAsync(configuration);
        return parse.Errors.Count > 0 ? 2 : rc;
    }
}
