using System.Security.Cryptography;
using Isotun.Transport;

namespace Isotun.Security;

/// <summary>
/// The file that keeps a TLS session ticket key across restarts: 80 bytes (a 16-byte name, a 32-byte HMAC secret and a
/// 32-byte AES key), the layout <c>openssl rand 80</c> fills and other servers use. Written 0600 when missing.
/// </summary>
public static class TicketKeyFile
{
    /// <summary>Reads the key, or makes a fresh one and writes it when there is no file yet.</summary>
    /// <exception cref="InvalidOperationException">The file is readable by others or does not hold exactly one key.</exception>
    public static byte[] LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var key = RandomNumberGenerator.GetBytes(NativeTls.TicketKeyLength);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            SecretFile.WriteAllBytes(path, key, overwrite: false);
            return key;
        }
        if (SecretFile.OpenToOthers(path))
            throw new InvalidOperationException($"{path}: a ticket key must not be readable by group or others (chmod 600)");
        var length = new FileInfo(path).Length;
        if (length != NativeTls.TicketKeyLength)
            throw new InvalidOperationException($"{path}: a ticket key file holds exactly {NativeTls.TicketKeyLength} bytes (openssl rand {NativeTls.TicketKeyLength} writes one); this one has {length}");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != NativeTls.TicketKeyLength)
            throw new InvalidOperationException($"{path}: changed while it was read; try again");
        return bytes;
    }
}
