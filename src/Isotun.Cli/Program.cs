using System.CommandLine;
using Isotun.Cli.Commands;

// `isotun`: one command, verbs per role. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error
// (`isotun connect` adds its own, see docs/client.md).
Signals.HonourStopSignals();
var root = new RootCommand("Isotun: a multi-tenant VPN over TLS that speaks the OpenConnect (AnyConnect/CSTP) protocol");
root.Subcommands.Add(ServerCommand.Create());
root.Subcommands.Add(GatewayCommand.Create());
root.Subcommands.Add(ConnectCommand.Create());
root.Subcommands.Add(LabCommands.Create());
root.Subcommands.Add(PkiCommands.Create());
root.Subcommands.Add(UserCommands.Create());
root.Subcommands.Add(ConfigCommands.Create());
root.Subcommands.Add(DoctorCommand.Create());

// Signals are handled by the long-running verbs themselves (the client must log off on SIGTERM).
var parse = root.Parse(args);
return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
