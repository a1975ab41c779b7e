using System.Collections;
using System.Runtime.InteropServices;
using System.Text;

namespace Isotun.Cli;

/// <summary>
/// Runtime settings `isotun server` needs that the .NET runtime reads only from the environment, once, before any
/// managed code runs: a small gen0 budget for the garbage collector (after a burst of logins the runtime otherwise
/// keeps tens of MiB committed but free; about a fifth of the memory per idle session at 10,000, see
/// docs/benchmarks.md). A server started without it replaces itself with `execve` by the same program, with the
/// same arguments and descriptors and the variable added: the PID stays, so a supervisor or PID file is not misled.
/// An operator who sets the variable (any value; `0` is the runtime's own default) is left as they are; so is the
/// shipped systemd unit, which sets it.
/// </summary>
internal static class RuntimeEnvironment
{
    public const string Gen0Variable = "DOTNET_GCgen0size";
    public const string Gen0Value = "0x400000"; // 4 MiB

    /// <summary>The environment to run <paramref name="args"/> with, or null when the current one will do.</summary>
    public static List<string>? Wanted(IReadOnlyList<string> args, IDictionary environment)
    {
        if (Verb(args) != "server") return null;
        // The runtime takes either prefix; an operator's choice wins.
        if (environment.Contains(Gen0Variable) || environment.Contains("COMPlus_GCgen0size")) return null;
        var entries = new List<string>(environment.Count + 1);
        foreach (DictionaryEntry e in environment) entries.Add($"{e.Key}={e.Value}");
        entries.Add($"{Gen0Variable}={Gen0Value}");
        return entries;
    }

    /// <summary>The command word: the first argument, after the global <c>--log-format</c> (which may come before it).</summary>
    private static string? Verb(IReadOnlyList<string> args)
    {
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == Commands.Logging.Format.Name) i++; // and its value
            else if (!args[i].StartsWith(Commands.Logging.Format.Name + "=", StringComparison.Ordinal)) return args[i];
        }
        return null;
    }

    /// <summary>
    /// Re-executes this process with the settings it lacks; returns only when nothing is needed or the exec failed
    /// (then the server runs on the runtime's defaults, and says so with --verbose).
    /// </summary>
    public static void Apply(string[] args)
    {
        if (!OperatingSystem.IsLinux() || Wanted(args, Environment.GetEnvironmentVariables()) is not { } env) return;
        // /proc/self/cmdline is the argv this process was started with (the host and the app's path for
        // `dotnet isotun.dll`, the apphost alone otherwise), so the new image is started exactly as this one was.
        string[] argv;
        try
        {
            argv = Encoding.UTF8.GetString(File.ReadAllBytes("/proc/self/cmdline")).TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return;
        }

        var native = new List<nint>();
        try
        {
            nint[] Block(IReadOnlyList<string> strings)
            {
                var block = new nint[strings.Count + 1]; // ends with a null pointer
                for (int i = 0; i < strings.Count; i++) native.Add(block[i] = Marshal.StringToCoTaskMemUTF8(strings[i]));
                return block;
            }

            var argvBlock = Block(argv);
            var envBlock = Block(env);
            execve("/proc/self/exe", argvBlock, envBlock);
            if (args.Contains("--verbose"))
                Console.Error.WriteLine($"isotun: could not restart with {Gen0Variable}={Gen0Value} (errno {Marshal.GetLastPInvokeError()}); running on the runtime's default gen0 budget");
        }
        finally
        {
            foreach (var p in native) Marshal.FreeCoTaskMem(p);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int execve([MarshalAs(UnmanagedType.LPUTF8Str)] string path, nint[] argv, nint[] envp);
}
