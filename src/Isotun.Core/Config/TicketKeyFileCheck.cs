using Isotun.Security;

namespace Isotun.Config;

/// <summary>Checks a configured TLS session ticket key file at load time, so that a bad one is listed with its key path.</summary>
internal static class TicketKeyFileCheck
{
    /// <summary>The file's path, or null when the key is absent; a file that exists must be one key for its owner alone
    /// (a missing one is made at start, so it is no error).</summary>
    public static string? Read(ConfigWalker walker, YamlTreeNode? node, string path)
    {
        var file = walker.FilePath(node, path);
        if (file is not null && File.Exists(file) && TicketKeyFile.Problem(file) is { } problem) walker.Error(path, $"{file} {problem}");
        return file;
    }
}
