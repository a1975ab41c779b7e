using Isotun.Lab;

namespace Isotun.Integration.Infrastructure;

/// <summary>Reading a lab process's log after the event it reports.</summary>
public static class ProcessLogs
{
    /// <summary>
    /// The log of <paramref name="name"/> once it holds <paramref name="expected"/>, or as it is after
    /// <paramref name="within"/> (10 s by default), for the assertion to show. A process answers its peer before its
    /// logger has written the line that reports it, so reading the file once right after the answer may miss it.
    /// </summary>
    public static string Once(LabLayout lab, string name, string expected, TimeSpan? within = null)
    {
        string path = LabProcess.LogPath(lab, name);
        string Read() => File.Exists(path) ? File.ReadAllText(path) : "";
        Eventually.Until(within ?? TimeSpan.FromSeconds(10), () => Read().Contains(expected, StringComparison.Ordinal), TimeSpan.FromMilliseconds(50));
        return Read();
    }
}
