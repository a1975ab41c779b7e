using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Security;

/// <summary>
/// Slow password hashes: PBKDF2-HMAC-SHA256 encoded as <c>$pbkdf2-sha256$&lt;iterations&gt;$&lt;salt b64&gt;$&lt;hash b64&gt;</c>.
/// Verification never throws on a malformed stored hash; it simply fails.
/// </summary>
public static class PasswordHasher
{
    public const int DefaultIterations = 310_000;
    public const int MinIterations = 1_000;
    public const int MaxIterations = 10_000_000;

    private const string Scheme = "pbkdf2-sha256";
    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    // Bounds on what Verify accepts from a stored hash, so a hostile file cannot make us allocate much.
    private const int MinStoredBytes = 8;
    private const int MaxStoredBytes = 64;

    private static readonly byte[] DummySalt = RandomNumberGenerator.GetBytes(SaltBytes);
    private static readonly byte[] DummyHash = RandomNumberGenerator.GetBytes(HashBytes);

    public static string Hash(string password, int iterations = DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, MinIterations);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(iterations, MaxIterations);

        Span<byte> salt = stackalloc byte[SaltBytes];
        RandomNumberGenerator.Fill(salt);
        Span<byte> hash = stackalloc byte[HashBytes];
        Derive(password, salt, iterations, hash);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"${Scheme}${iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}");
    }

    public static bool Verify(string password, string encodedHash)
    {
        if (password is null || !TryDecode(encodedHash, out var iterations, out var salt, out var expected))
        {
            return false;
        }

        var actual = new byte[expected.Length];
        Derive(password, salt, iterations, actual);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>
    /// Spends the time of a real <see cref="Verify"/> at <paramref name="iterations"/> (the cost the known users' hashes
    /// have), for users that do not exist.
    /// </summary>
    public static void VerifyDummy(string password, int iterations = DefaultIterations)
    {
        Span<byte> actual = stackalloc byte[HashBytes];
        Derive(password ?? string.Empty, DummySalt, Math.Clamp(iterations, MinIterations, MaxIterations), actual);
        _ = CryptographicOperations.FixedTimeEquals(actual, DummyHash);
    }

    /// <summary>True when <paramref name="encodedHash"/> has the shape <see cref="Verify"/> accepts.</summary>
    internal static bool IsWellFormed(string? encodedHash) => TryDecode(encodedHash, out _, out _, out _);

    /// <summary>The iteration count of a well-formed hash; <see cref="DefaultIterations"/> for any other string.</summary>
    internal static int IterationsOf(string encodedHash) =>
        TryDecode(encodedHash, out var iterations, out _, out _) ? iterations : DefaultIterations;

    private static void Derive(string password, ReadOnlySpan<byte> salt, int iterations, Span<byte> destination)
    {
        var passwordBytes = Encoding.UTF8.GetBytes(password);
        try
        {
            Rfc2898DeriveBytes.Pbkdf2(passwordBytes, salt, destination, iterations, HashAlgorithmName.SHA256);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    private static bool TryDecode(string? encoded, out int iterations, out byte[] salt, out byte[] hash)
    {
        iterations = 0;
        salt = [];
        hash = [];
        if (string.IsNullOrEmpty(encoded) || encoded.Length > 512)
        {
            return false;
        }

        // Base64 decoding skips whitespace; a stored hash must not, or it could split a password-file line.
        foreach (var c in encoded)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c) || c == ':')
            {
                return false;
            }
        }

        // "$pbkdf2-sha256$N$salt$hash" splits into "", scheme, N, salt, hash.
        var parts = encoded.Split('$');
        if (parts.Length != 5 || parts[0].Length != 0 || !string.Equals(parts[1], Scheme, StringComparison.Ordinal))
        {
            return false;
        }

        if (parts[2].Length is 0 or > 8
            || !parts[2].All(char.IsAsciiDigit)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out iterations)
            || iterations < MinIterations
            || iterations > MaxIterations)
        {
            return false;
        }

        if (!TryBase64(parts[3], out salt) || !TryBase64(parts[4], out hash))
        {
            return false;
        }

        return true;
    }

    private static bool TryBase64(string text, out byte[] bytes)
    {
        bytes = [];
        var buffer = new byte[(text.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64String(text, buffer, out var written) || written < MinStoredBytes || written > MaxStoredBytes)
        {
            return false;
        }

        bytes = buffer[..written];
        return true;
    }
}
