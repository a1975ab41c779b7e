using Isotun.Cli;
using Isotun.Cli.Commands;

// `isotun`: one command, verbs per role. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error
// (`isotun connect` adds its own, see docs/client.md).
Signals.HonourStopSignals();
RuntimeEnvironment.Apply(args);

// Signals are handled by the long-running verbs themselves (the client must log off on SIGTERM).
return await IsotunCli.RunAsync(args, new System.CommandLine.InvocationConfiguration { ProcessTerminationTimeout = null });
