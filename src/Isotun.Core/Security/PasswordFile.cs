using System.Text;

namespace Isotun.Security;

/// <summary>
/// An ocpasswd-like text file: one <c>user:hash</c> per line, <c>#</c> comments and blank lines allowed.
/// Hashes are <see cref="PasswordHasher"/> encodings. Writes keep comments and order and replace the file atomically, mode 0600.
/// </summary>
public sealed class PasswordFile
{
    private const int MaxUserNameLength = 64;
    private const long MaxFileBytes = 16 * 1024 * 1024;

    private readonly Dictionary<string, string> _hashes;
    private readonly List<string> _users;

    private PasswordFile(Dictionary<string, string> hashes, List<string> users)
    {
        _hashes = hashes;
        _users = users;
        // The cost most of its users' hashes have (of two as common, the higher): an unknown user is checked at that
        // cost, so a login's time does not tell a known name from an unknown one.
        UsualIterations = hashes.Values.Select(PasswordHasher.IterationsOf).GroupBy(n => n)
            .OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).Select(g => g.Key).FirstOrDefault(PasswordHasher.DefaultIterations);
    }

    /// <summary>User names in file order.</summary>
    public IReadOnlyCollection<string> Users => _users;

    /// <summary>The iteration count most hashes in the file have; the default for a file without users.</summary>
    public int UsualIterations { get; }

    /// <summary>The file's stamp as it was just before it was read.</summary>
    public FileStamp Stamp { get; private set; }

    /// <exception cref="InvalidDataException">Malformed lines, duplicate users or bad user names; the message lists every one with its line number.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static PasswordFile Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: password file not found", path);
        }

        if (info.Length > MaxFileBytes)
        {
            throw new InvalidDataException($"{path}: larger than {MaxFileBytes / (1024 * 1024)} MiB");
        }

        // Taken before the read: a write in between shows as a change the next time the stamp is compared.
        var stamp = FileStamp.Of(info);
        var file = Parse(File.ReadAllLines(path, Encoding.UTF8), path);
        file.Stamp = stamp;
        return file;
    }

    /// <summary>1 to 64 characters of <c>[A-Za-z0-9._@-]</c>.</summary>
    public static bool IsValidUserName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxUserNameLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '@' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    public bool TryGetHash(string user, out string hash)
    {
        if (user is not null && _hashes.TryGetValue(user, out var found))
        {
            hash = found;
            return true;
        }

        hash = string.Empty;
        return false;
    }

    /// <summary>Adds or replaces <paramref name="user"/>, creating the file when missing.</summary>
    /// <exception cref="ArgumentException">Bad user name or a hash that is not a <see cref="PasswordHasher"/> encoding.</exception>
    /// <exception cref="InvalidDataException">The existing file is malformed; it is left untouched.</exception>
    public static void SetUser(string path, string user, string encodedHash)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsValidUserName(user))
        {
            throw new ArgumentException("user names are 1-64 characters of A-Z a-z 0-9 . _ @ -", nameof(user));
        }

        if (!PasswordHasher.IsWellFormed(encodedHash))
        {
            throw new ArgumentException("not a $pbkdf2-sha256$ password hash", nameof(encodedHash));
        }

        using var turn = Turn(path);
        var lines = ReadForUpdate(path);
        var entry = $"{user}:{encodedHash}";
        var replaced = false;
        for (var i = 0; i < lines.Count; i++)
        {
            if (UserOf(lines[i]) == user)
            {
                lines[i] = entry;
                replaced = true;
            }
        }

        if (!replaced)
        {
            lines.Add(entry);
        }

        Write(path, lines);
    }

    /// <summary>Removes <paramref name="user"/>; false when the file or the user does not exist.</summary>
    /// <exception cref="InvalidDataException">The existing file is malformed; it is left untouched.</exception>
    public static bool RemoveUser(string path, string user)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (user is null || !File.Exists(path))
        {
            return false;
        }

        using var turn = Turn(path);
        var lines = ReadForUpdate(path);
        var removed = lines.RemoveAll(line => UserOf(line) == user);
        if (removed == 0)
        {
            return false;
        }

        Write(path, lines);
        return true;
    }

    /// <summary>One change at a time (each reads the file, changes a line and writes it whole): of two `isotun user`
    /// commands at once, the second would otherwise write the file without the first's change.</summary>
    private static FileStream Turn(string path) => Linux.FileClaim.WaitForTurn(path + ".lock", TimeSpan.FromSeconds(30));

    private static List<string> ReadForUpdate(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        // Validates first: rewriting a file we do not understand could drop entries.
        _ = Load(path);
        return [.. File.ReadAllLines(path, Encoding.UTF8)];
    }

    private static void Write(string path, List<string> lines)
    {
        var builder = new StringBuilder();
        foreach (var line in lines)
        {
            builder.Append(line).Append('\n');
        }

        SecretFile.WriteAllText(path, builder.ToString(), overwrite: true);
    }

    /// <summary>The user an entry line belongs to, or null for comments, blanks and lines without a colon.</summary>
    private static string? UserOf(string line)
    {
        var trimmed = line.Trim();
        if (trimmed.Length == 0 || trimmed[0] == '#')
        {
            return null;
        }

        var colon = trimmed.IndexOf(':');
        return colon < 0 ? null : trimmed[..colon];
    }

    private static PasswordFile Parse(string[] lines, string path)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        var firstLine = new Dictionary<string, int>(StringComparer.Ordinal);
        var users = new List<string>();
        var errors = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            var number = i + 1;
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var colon = line.IndexOf(':');
            if (colon < 0)
            {
                errors.Add($"line {number}: expected user:hash");
                continue;
            }

            var user = line[..colon];
            var hash = line[(colon + 1)..];
            if (!IsValidUserName(user))
            {
                // Never echo the line: a mistyped line might hold a plain password.
                errors.Add($"line {number}: invalid user name (1-64 characters of A-Z a-z 0-9 . _ @ -)");
                continue;
            }

            if (!PasswordHasher.IsWellFormed(hash))
            {
                errors.Add($"line {number}: user '{user}': hash is not a $pbkdf2-sha256$ encoding");
                continue;
            }

            if (firstLine.TryGetValue(user, out var previous))
            {
                errors.Add($"line {number}: duplicate user '{user}' (first on line {previous})");
                continue;
            }

            firstLine[user] = number;
            hashes[user] = hash;
            users.Add(user);
        }

        if (errors.Count > 0)
        {
            throw new InvalidDataException($"{path}: {string.Join("; ", errors)}");
        }

        return new PasswordFile(hashes, users);
    }
}
