using System.Text;

namespace Isotun.Security;

/// <summary>Writes private keys and other secrets: mode 0600 from creation, atomically (temporary file + rename).</summary>
public static class SecretFile
{
    /// <summary>Whether group or others may read or write <paramref name="path"/>: a secret's file is its owner's alone.</summary>
    public static bool OpenToOthers(string path) =>
        (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0;

    /// <summary>
    /// Makes the directories <paramref name="path"/> lies in that are missing, each its owner's alone (0700); ones that
    /// exist keep their mode. For the files that hold secrets or state.
    /// </summary>
    public static void CreateDirectoryFor(string path)
    {
        // One at a time from the top: the runtime gives the mode to the last directory only, the others the default.
        var missing = new Stack<string>();
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); !string.IsNullOrEmpty(dir) && !Directory.Exists(dir); dir = Path.GetDirectoryName(dir))
            missing.Push(dir);
        while (missing.TryPop(out var dir))
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false, or the write failed.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool overwrite) =>
        AtomicFile.Write(path, bytes, overwrite, AtomicFile.SecretMode);

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte order mark.</summary>
    public static void WriteAllText(string path, string text, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        try
        {
            WriteAllBytes(path, bytes, overwrite);
        }
        finally
        {
            // The text may be a key; do not leave a copy lying in the heap longer than needed.
            Array.Clear(bytes);
        }
    }
}
