namespace Isotun.Doctor;

/// <summary>
/// The files the doctor reads (/proc, /sys, /dev), under a root: "/" on a real host, a folder of stand-ins in
/// tests. Read-only, bounded, and never throws for a missing or unreadable file: a host that hides a file
/// gets a finding that says so, not a crash.
/// </summary>
public sealed class HostView(string root = "/")
{
    /// <summary>The most read from one file (a /proc/cpuinfo of a few hundred cores still fits).</summary>
    public const int MaxFileChars = 4 * 1024 * 1024;

    public string Root { get; } = root;

    private string Full(string path) => Path.Combine(Root, path.TrimStart('/'));

    /// <summary>A text file, trimmed; null when it is missing or cannot be read.</summary>
    public string? Read(string path)
    {
        try
        {
            using var reader = new StreamReader(Full(path));
            var text = new System.Text.StringBuilder();
            var chunk = new char[8192];
            int n;
            while (text.Length < MaxFileChars && (n = reader.Read(chunk, 0, Math.Min(chunk.Length, MaxFileChars - text.Length))) > 0)
                text.Append(chunk, 0, n);
            return text.ToString().Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>An integer file such as /sys/class/net/eth0/mtu; null when missing or not a number.</summary>
    public long? ReadNumber(string path) => long.TryParse(Read(path), out long n) ? n : null;

    public bool Exists(string path) => File.Exists(Full(path)) || Directory.Exists(Full(path));

    /// <summary>The names in a folder, sorted; empty when it is missing.</summary>
    public IReadOnlyList<string> List(string folder)
    {
        try
        {
            return Directory.Exists(Full(folder))
                ? Directory.EnumerateFileSystemEntries(Full(folder)).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList()
                : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The last part of a symbolic link's target (a NIC's driver); null when it is not a link.</summary>
    public string? LinkName(string path)
    {
        try
        {
            var target = new FileInfo(Full(path)).LinkTarget;
            return target is null ? null : Path.GetFileName(target.TrimEnd('/'));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The command names of the running processes (/proc/PID/comm).</summary>
    public IEnumerable<string> ProcessNames() =>
        List("/proc").Where(name => name.All(char.IsAsciiDigit)).Select(pid => Read($"/proc/{pid}/comm")).OfType<string>();
}
