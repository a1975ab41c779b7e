namespace Isotun.UnitTests.Protocol.Tls;

/// <summary>
/// ClientHellos for the reader's tests: two captured from OpenSSL 3 (openssl s_client, one record each), and a
/// builder for hand-made ones, plus helpers that re-frame a hello into several TLS records.
/// </summary>
internal static class TlsVectors
{
    /// <summary><c>openssl s_client -servername vpn.acme.example</c>: TLS 1.3 hello in one record.</summary>
    public static readonly byte[] OpenSslWithSni = Convert.FromHexString("160301013d010001390303ca4a80e3030abbf7e06e001b59d537b9967849bc8285d0dc6fb6246be3c4ffe220fa808928d9b6268215cce6ff86de7a6e425f8147e80aec53e200bfbe9464aeaa003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000b200000015001300001076706e2e61636d652e6578616d706c65000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d002056fc79a0c494a610a10654a25c192e0f22f61976a462f5dd77f14802effafd11");

    /// <summary><c>openssl s_client -noservername</c>.</summary>
    public static readonly byte[] OpenSslWithoutSni = Convert.FromHexString("1603010124010001200303febec7436831dd77474d19bbcd7dfa62902c449ac9a74f0e0edc16d106453a45208a0576f1d636d10279e03c0a0c03bb40899cd0d3761d0c7054f5418dcc1fb7a8003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000099000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00205254c433b675a6c552ac58b9d1f4e94828e1ea22dd676f4fa3b8ef322541e218");

    /// <summary>The handshake bytes (type, length, body) carried by a stream of handshake records.</summary>
    public static byte[] HandshakeBytes(byte[] records)
    {
        var output = new List<byte>();
        int p = 0;
        while (p + 5 <= records.Length)
        {
            int length = (records[p + 3] << 8) | records[p + 4];
            output.AddRange(records.AsSpan(p + 5, length).ToArray());
            p += 5 + length;
        }

        return output.ToArray();
    }

    /// <summary>Re-frames handshake bytes into records of random payload sizes (1..maxRecord).</summary>
    public static byte[] Reframe(byte[] handshake, Random random, int maxRecord = 300)
    {
        var output = new List<byte>();
        int p = 0;
        while (p < handshake.Length)
        {
            int n = Math.Min(handshake.Length - p, random.Next(4) == 0 ? 1 : random.Next(1, maxRecord + 1));
            output.AddRange([0x16, 0x03, 0x01, (byte)(n >> 8), (byte)n]);
            output.AddRange(handshake.AsSpan(p, n).ToArray());
            p += n;
        }

        return output.ToArray();
    }

    /// <summary>One record carrying <paramref name="handshake"/> (which must fit 16 KiB).</summary>
    public static byte[] Record(byte[] handshake, byte type = 0x16) =>
        [type, 0x03, 0x01, (byte)(handshake.Length >> 8), (byte)handshake.Length, .. handshake];

    /// <summary>
    /// A ClientHello handshake message (type + 3-byte length + body) with the given extensions, each (type, data).
    /// <paramref name="extensions"/> null means no extensions block at all (an SSL 3-style hello).
    /// </summary>
    public static byte[] Hello(IEnumerable<(ushort Type, byte[] Data)>? extensions, byte[]? sessionId = null)
    {
        var body = new List<byte> { 0x03, 0x03 };
        body.AddRange(Enumerable.Range(0, 32).Select(i => (byte)i));
        sessionId ??= new byte[32];
        body.Add((byte)sessionId.Length);
        body.AddRange(sessionId);
        body.AddRange([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // two cipher suites
        body.AddRange([0x01, 0x00]); // null compression
        if (extensions is not null)
        {
            var ext = new List<byte>();
            foreach (var (type, data) in extensions)
            {
                ext.AddRange([(byte)(type >> 8), (byte)type, (byte)(data.Length >> 8), (byte)data.Length]);
                ext.AddRange(data);
            }

            body.AddRange([(byte)(ext.Count >> 8), (byte)ext.Count]);
            body.AddRange(ext);
        }

        return [0x01, (byte)(body.Count >> 16), (byte)(body.Count >> 8), (byte)body.Count, .. body];
    }

    /// <summary>server_name extension data with the given (name_type, name) entries.</summary>
    public static byte[] ServerNameData(params (byte Type, byte[] Name)[] names)
    {
        var list = new List<byte>();
        foreach (var (type, name) in names)
        {
            list.Add(type);
            list.AddRange([(byte)(name.Length >> 8), (byte)name.Length]);
            list.AddRange(name);
        }

        return [(byte)(list.Count >> 8), (byte)list.Count, .. list];
    }

    public static (ushort, byte[]) Sni(string name) => (0, ServerNameData((0, System.Text.Encoding.ASCII.GetBytes(name))));

    public static (ushort, byte[]) SupportedVersions => (0x002b, [0x04, 0x03, 0x04, 0x03, 0x03]);
}
