using Isotun.Protocol.Cookies;
using Isotun.Security;

namespace Isotun.Server;

/// <summary>
/// The file that keeps a server's cookie keys when it runs alone (a cluster keeps them in its store): a
/// <see cref="CookieKeyRing"/> in its stored form, mode 0600, made at first start and rewritten whole at each rotation.
/// </summary>
public static class CookieKeyFile
{
    /// <summary>Reads the ring, or makes a ring of one fresh key and writes it when there is no file yet.</summary>
    /// <exception cref="InvalidOperationException">The file is readable by others, or not a ring.</exception>
    public static CookieKeyRing LoadOrCreate(string path, DateTimeOffset now)
    {
        if (!File.Exists(path))
        {
            var ring = CookieKeyRing.Create(now);
            SecretFile.CreateDirectoryFor(path);
            SecretFile.WriteAllBytes(path, ring.ToBytes(), overwrite: false);
            return ring;
        }
        if (SecretFile.OpenToOthers(path)) throw new InvalidOperationException($"{path}: {OpenToOthers}");
        // A bare key from before rings counts from the file's last change.
        return CookieKeyRing.Parse(File.ReadAllBytes(path), File.GetLastWriteTimeUtc(path), out var error)
            ?? throw new InvalidOperationException($"{path}: {error}");
    }

    private const string OpenToOthers = "cookie keys must not be readable by group or others (chmod 600)";

    /// <summary>
    /// Why an existing file would stop the server at start, or null: open to others, or not a ring. Its contents are
    /// checked only where this process may read them (a validation run as another user than the server's sees the mode
    /// alone).
    /// </summary>
    public static string? Problem(string path)
    {
        if (SecretFile.OpenToOthers(path)) return OpenToOthers;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        catch (IOException e)
        {
            return e.Message;
        }
        return CookieKeyRing.Parse(bytes, File.GetLastWriteTimeUtc(path), out var error) is null ? error : null;
    }

    /// <summary>Replaces the file with <paramref name="ring"/>, atomically and 0600.</summary>
    public static void Save(string path, CookieKeyRing ring) => SecretFile.WriteAllBytes(path, ring.ToBytes(), overwrite: true);
}
