using System.Security.Cryptography;
using Isotun.Transport;

namespace Isotun.Security;

/// <summary>
/// The file that keeps a TLS session ticket key across restarts: 80 bytes (a 16-byte name, a 32-byte HMAC secret and a
/// 32-byte AES key), the layout <c>openssl rand 80</c> fills and other servers use. Written 0600 when missing.
/// </summary>
public static class TicketKeyFile
{
    /// <summary>What is wrong with the key file at <paramref name="path"/>, which exists; null when nothing is.</summary>
    public static string? Problem(string path) =>
        new FileInfo(path).Length is var length && length != NativeTls.TicketKeyLength
            ? $"must hold exactly {NativeTls.TicketKeyLength} bytes (openssl rand {NativeTls.TicketKeyLength} writes one), not {length}; or remove it to have one made at start"
            : SecretFile.OpenToOthers(path) ? "must not be readable by group or others (chmod 600)" : null;

    /// <summary>Reads the key, or makes a fresh one and writes it when there is no file yet.</summary>
    /// <exception cref="InvalidOperationException">The file is readable by others or does not hold exactly one key.</exception>
    public static byte[] LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var key = RandomNumberGenerator.GetBytes(NativeTls.TicketKeyLength);
            SecretFile.CreateDirectoryFor(path);
            SecretFile.WriteAllBytes(path, key, overwrite: false);
            return key;
        }
        if (Problem(path) is { } problem) throw new InvalidOperationException($"{path}: {problem}");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length != NativeTls.TicketKeyLength)
            throw new InvalidOperationException($"{path}: changed while it was read; try again");
        return bytes;
    }
}
