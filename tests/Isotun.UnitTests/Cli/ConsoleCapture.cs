using System.CommandLine;
using Isotun.Cli;

namespace Isotun.UnitTests.Cli;

/// <summary>
/// Tests that swap the process's console, working directory or environment: they run alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "console";
}

/// <summary>Runs <c>isotun</c> verbs in this process with stdin, stdout and stderr captured, in a given directory.</summary>
internal static class ConsoleCapture
{
    public sealed record Result(int ExitCode, string Out, string Error);

    public static async Task<Result> RunAsync(string directory, string? stdin, params string[] args)
    {
        var (oldOut, oldError, oldIn, oldDir) = (Console.Out, Console.Error, Console.In, Environment.CurrentDirectory);
        var output = new StringWriter();
        var error = new StringWriter();
        Console.SetOut(output);
        Console.SetError(error);
        Console.SetIn(new StringReader(stdin ?? ""));
        Environment.CurrentDirectory = directory;
        try
        {
            int rc = await IsotunCli.RunAsync(args, new InvocationConfiguration { Output = output, Error = error });
            return new Result(rc, output.ToString(), error.ToString());
        }
        finally
        {
            Environment.CurrentDirectory = oldDir;
            Console.SetOut(oldOut);
            Console.SetError(oldError);
            Console.SetIn(oldIn);
        }
    }

    /// <summary>What <paramref name="action"/> wrote to stdout and to stderr.</summary>
    public static (string Out, string Error) Capture(Action action)
    {
        var (oldOut, oldError) = (Console.Out, Console.Error);
        var output = new StringWriter();
        var error = new StringWriter();
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            action();
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldError);
        }
        return (output.ToString(), error.ToString());
    }
}
