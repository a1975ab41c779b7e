using System.Text;

namespace Isotun.Config;

/// <summary>Reads a configuration file whole, bounded: a missing, unreadable or oversized file is one message.</summary>
public static class ConfigFile
{
    /// <summary>
    /// The UTF-8 text of <paramref name="path"/> and its full path; false, with why (after the path as given), when it is
    /// missing, holds more than <paramref name="maxBytes"/> (then <paramref name="tooLarge"/> says so), or cannot be read.
    /// </summary>
    public static bool TryRead(string path, long maxBytes, string tooLarge, out string text, out string fullPath, out string error)
    {
        (text, fullPath, error) = ("", "", "");
        try
        {
            fullPath = Path.GetFullPath(path);
            var info = new FileInfo(fullPath);
            if (!info.Exists) error = $"{path}: file not found";
            else if (info.Length > maxBytes) error = $"{path}: {tooLarge}";
            else text = File.ReadAllText(fullPath, Encoding.UTF8);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error = $"{path}: {ex.Message}";
        }
        return error.Length == 0;
    }
}
