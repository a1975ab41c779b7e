using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Linux;

namespace Isotun.Integration.Interop;

/// <summary>Traffic through a tunnel, the same way for every pairing: ping, and a transfer proven byte-identical.</summary>
public static class Traffic
{
    public const long TransferBytes = 100L * 1024 * 1024;

    public static void AssertPing(string ns, IPAddress target)
    {
        var r = Run.InNs(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", target.ToString());
        Assert.True(r.ExitCode == 0, $"ping {target} from {ns} failed: {r}");
    }

    /// <summary>
    /// Sends <paramref name="total"/> pseudo-random bytes to the lab service's SHA-256 sink from namespace
    /// <paramref name="ns"/>, half-closes, and asserts the sink's "&lt;sha256&gt; &lt;count&gt;" equals what was sent.
    /// </summary>
    public static void AssertTransfer(string ns, IPAddress service, long total = TransferBytes, int seed = 4)
    {
        var (sentHash, reply) = NetworkNamespace.Run(ns, () =>
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 120_000, SendTimeout = 120_000 };
            s.Connect(new IPEndPoint(service, LabLayout.SinkPort));
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buf = new byte[64 * 1024];
            var rng = new Random(seed);
            for (long sent = 0; sent < total; sent += buf.Length)
            {
                int chunk = (int)Math.Min(buf.Length, total - sent);
                rng.NextBytes(buf);
                sha.AppendData(buf, 0, chunk);
                int off = 0;
                while (off < chunk) off += s.Send(buf, off, chunk - off, SocketFlags.None);
            }
            s.Shutdown(SocketShutdown.Send);
            var r = new byte[256];
            int n = 0, k;
            while (n < r.Length && (k = s.Receive(r, n, r.Length - n, SocketFlags.None)) > 0) n += k;
            return (Convert.ToHexStringLower(sha.GetHashAndReset()), Encoding.ASCII.GetString(r, 0, n).Trim());
        });
        Assert.Equal($"{sentHash} {total}", reply);
    }

    /// <summary>The IPv4 address on <paramref name="device"/> in <paramref name="ns"/>, or null while there is none.</summary>
    public static IPAddress? TunAddress(string ns, string device)
    {
        var r = Run.Exec("ip", ["-n", ns, "-4", "-o", "addr", "show", "dev", device]);
        if (r.ExitCode != 0) return null;
        var parts = r.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = Array.IndexOf(parts, "inet");
        return i >= 0 && i + 1 < parts.Length && IPAddress.TryParse(parts[i + 1].Split('/')[0], out var a) ? a : null;
    }

    /// <summary>Names of the TUN devices in <paramref name="ns"/>.</summary>
    public static IReadOnlyList<string> TunDevices(string ns)
    {
        var r = Run.Exec("ip", ["-n", ns, "-o", "link", "show", "type", "tun"]);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3)[1].Trim().Split('@')[0])
            .ToList();
    }

    /// <summary>Whether <paramref name="address"/> lies in <paramref name="cidr"/> (IPv4 "a.b.c.d/len").</summary>
    public static bool InPool(IPAddress address, string cidr)
    {
        var parts = cidr.Split('/');
        var net = IPAddress.Parse(parts[0]).GetAddressBytes();
        var a = address.GetAddressBytes();
        if (a.Length != net.Length) return false;
        int prefix = int.Parse(parts[1]);
        for (int bit = 0; bit < prefix; bit++)
            if (((net[bit / 8] ^ a[bit / 8]) & (0x80 >> (bit % 8))) != 0) return false;
        return true;
    }

}
