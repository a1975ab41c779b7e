namespace Isotun.Metrics;

/// <summary>
/// One tenant's TLS record work, measured by sampling: thread CPU nanoseconds spent inside SslStream's encryption
/// and decryption (the socket I/O under it left out) for some records, and the bytes those records carried. The CPU
/// of all records is then that cost per byte times the tenant's bytes (<see cref="Estimate"/>).
/// </summary>
public sealed class CryptoMeter
{
    private long _encryptNs, _encryptBytes, _decryptNs, _decryptBytes;

    public void Encrypted(long ns, int bytes)
    {
        Interlocked.Add(ref _encryptNs, ns);
        Interlocked.Add(ref _encryptBytes, bytes);
    }

    public void Decrypted(long ns, int bytes)
    {
        Interlocked.Add(ref _decryptNs, ns);
        Interlocked.Add(ref _decryptBytes, bytes);
    }

    /// <summary>Seconds of CPU for <paramref name="totalBytes"/> bytes sent (encrypt) or received, at the sampled cost per byte.</summary>
    public double Estimate(bool encrypt, long totalBytes)
    {
        long ns = Interlocked.Read(ref encrypt ? ref _encryptNs : ref _decryptNs);
        long bytes = Interlocked.Read(ref encrypt ? ref _encryptBytes : ref _decryptBytes);
        return bytes == 0 ? 0 : ns / 1e9 * ((double)Math.Max(totalBytes, bytes) / bytes);
    }
}
