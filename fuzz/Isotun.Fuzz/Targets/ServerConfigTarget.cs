using System.Text;
using Isotun.Server.Configuration;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// A server config file's text (UTF-8), validated as <c>isotun config validate</c> does. Relative paths resolve under a
/// directory that does not exist, so no file the fuzzer names relatively is ever read. A result is a config or
/// errors, never both, and every error names its path and says something.
/// </summary>
public sealed class ServerConfigTarget : IFuzzTarget
{
    /// <summary>Where the text claims to come from.</summary>
    public const string SourcePath = "/nonexistent/isotun-fuzz/isotun.yaml";

    public string Name => "config";

    public string Description => "the server's YAML config (ServerConfigLoader.Parse)";

    public void Run(ReadOnlySpan<byte> input)
    {
        var result = ServerConfigLoader.Parse(Encoding.UTF8.GetString(input), SourcePath);
        Invariant.That(result.Ok == (result.Config is not null));
        Invariant.That((result.Config is null) == (result.Errors.Count > 0));
        foreach (var error in result.Errors)
        {
            Invariant.That(error.Path is not null && !string.IsNullOrEmpty(error.Message));
        }
    }
}
