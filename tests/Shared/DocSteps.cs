using System.Text.RegularExpressions;

namespace Isotun.TestSupport;

/// <summary>
/// The steps a document tells a user to type, for the tests that run them as written: the `./isotun …` lines of a
/// shell block (not the `sudo` ones, which need root and are a suite's own), shell comments dropped, split into arguments.
/// Compiled into both test projects, so the unit and the integration suites read a document the same way.
/// </summary>
public static class DocSteps
{
    private const string Prefix = "./isotun ";

    /// <summary>The steps of the first ```sh block in <paramref name="markdownPath"/> at or after <paramref name="heading"/> (the whole file without one).</summary>
    public static List<string[]> Read(string markdownPath, string? heading = null)
    {
        var text = File.ReadAllText(markdownPath);
        if (heading is not null) text = text[text.IndexOf(heading, StringComparison.Ordinal)..];
        var block = text[(text.IndexOf("```sh", StringComparison.Ordinal) + 5)..];
        block = block[..block.IndexOf("```", StringComparison.Ordinal)];
        return block.Split('\n')
            .Select(line => Regex.Replace(line, @"\s+#.*$", "").Trim())
            .Where(line => line.StartsWith(Prefix, StringComparison.Ordinal))
            .Select(line => line[Prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToList();
    }

    /// <summary>A step's arguments without its shell redirection, and the file a `&gt; FILE` sends its output to (null without one).</summary>
    public static (List<string> Args, string? Redirect) SplitRedirect(string[] step)
    {
        var args = step.ToList();
        var gt = args.IndexOf(">");
        if (gt < 0) return (args, null);
        var redirect = args[gt + 1];
        args.RemoveRange(gt, 2);
        return (args, redirect);
    }
}
