using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.DataPath;

/// <summary>Bulk TCP transfers through the tunnel to the lab service's sink and from its source, proven by SHA-256.</summary>
internal static class Transfer
{
    private const int TimeoutMs = 180_000;

    /// <summary>
    /// Sends <paramref name="total"/> seeded random bytes to the sink and half-closes; returns our hash and the
    /// sink's answer ("&lt;sha256&gt; &lt;count&gt;"). With <paramref name="from"/>, the socket is bound to that address.
    /// </summary>
    public static (string Sent, string Reply) Upload(string ns, IPEndPoint sink, IPAddress? from, long total)
    {
        using var s = Connect(ns, sink, from);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[64 * 1024];
        var rng = new Random(20261201);
        for (long sent = 0; sent < total;)
        {
            int n = (int)Math.Min(buf.Length, total - sent);
            rng.NextBytes(buf.AsSpan(0, n));
            sha.AppendData(buf, 0, n);
            for (int off = 0; off < n;) off += s.Send(buf, off, n - off, SocketFlags.None);
            sent += n;
        }
        s.Shutdown(SocketShutdown.Send);
        var r = new byte[256];
        int got = 0, k;
        while (got < r.Length && (k = s.Receive(r, got, r.Length - got, SocketFlags.None)) > 0) got += k;
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), Encoding.ASCII.GetString(r, 0, got).Trim());
    }

    /// <summary>Asks the source port for <paramref name="total"/> bytes; returns the hash they must have, the hash of what came, and how many came.</summary>
    public static (string Expected, string Received, long Count) Download(string ns, IPEndPoint source, IPAddress? from, long total)
    {
        using var s = Connect(ns, source, from);
        s.Send(Encoding.ASCII.GetBytes($"{total}\n"));
        using var got = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[256 * 1024];
        long count = 0;
        int n;
        while ((n = s.Receive(buf)) > 0)
        {
            got.AppendData(buf, 0, n);
            count += n;
        }

        // The same generator in chunks that are multiples of 8 bytes, as the service uses.
        using var want = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        ulong state = LabService.SourceSeed;
        for (long done = 0; done < total;)
        {
            int m = (int)Math.Min(buf.Length, total - done);
            LabService.SourceBytes(buf.AsSpan(0, m), ref state);
            want.AppendData(buf, 0, m);
            done += m;
        }
        return (Convert.ToHexStringLower(want.GetHashAndReset()), Convert.ToHexStringLower(got.GetHashAndReset()), count);
    }

    private static Socket Connect(string ns, IPEndPoint to, IPAddress? from) => NetworkNamespace.Run(ns, () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = TimeoutMs, SendTimeout = TimeoutMs };
        try
        {
            if (from is not null) s.Bind(new IPEndPoint(from, 0));
            s.Connect(to);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    });
}
