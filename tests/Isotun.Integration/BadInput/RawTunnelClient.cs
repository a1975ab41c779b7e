using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Transport;

namespace Isotun.Integration.BadInput;

/// <summary>
/// A deliberately low-level client that speaks just enough of the protocol to misbehave at any point: a TCP
/// socket made and connected inside the client namespace, TLS checked by the lab's pin, HTTP written by hand,
/// CSTP frames written raw. Every read is bounded by <see cref="Guard"/> so a test can never hang.
/// </summary>
internal sealed class RawTunnelClient : IDisposable
{
    public static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly NetworkStream _net;
    private SslStream? _tls;
    private ConnectionReader? _reader;

    private RawTunnelClient(Socket socket)
    {
        _socket = socket;
        _net = new NetworkStream(socket, ownsSocket: true);
    }

    public IPAddress? Address { get; private set; }
    public int Mtu { get; private set; }

    /// <summary>TCP only, from inside <paramref name="ns"/>: nothing is sent yet.</summary>
    public static RawTunnelClient ConnectTcp(string ns, IPEndPoint server) => new(NetworkNamespace.Run(ns, () =>
    {
        var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            s.Connect(server);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }));

    /// <summary>TCP and TLS; the server certificate must match <paramref name="pin"/>.</summary>
    public static async Task<RawTunnelClient> ConnectTlsAsync(string ns, IPEndPoint server, string pin)
    {
        var c = ConnectTcp(ns, server);
        try
        {
            c._tls = new SslStream(c._net, leaveInnerStreamOpen: false);
            using var cts = new CancellationTokenSource(Guard);
            await c._tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = server.Address.ToString(),
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && CertificatePin.Matches(cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData()), pin),
            }, cts.Token);
            c._reader = new ConnectionReader(c._tls);
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    /// <summary>Logs in with the XML exchange and returns the webvpn cookie (or fails the test).</summary>
    public async Task<string> LoginAsync(string user, string password, string group)
    {
        var xml = AuthXml.BuildReply("v9.01-raw", [new("username", user), new("password", password)], group, null);
        var (head, body) = await RequestAsync("POST", "/", [("X-Aggregate-Auth", "1"), ("Content-Type", "application/xml")], Encoding.UTF8.GetBytes(xml));
        Assert.True(head.StatusCode == 200, $"login: HTTP {head.StatusCode}: {Encoding.UTF8.GetString(body)}");
        foreach (var sc in head.Headers.GetAll("Set-Cookie"))
            if (sc.StartsWith("webvpn=", StringComparison.Ordinal)) return sc["webvpn=".Length..].Split(';')[0];
        Assert.Fail("login gave no webvpn cookie: " + Encoding.UTF8.GetString(body));
        return "";
    }

    /// <summary>Sends CONNECT with the cookie; the tunnel is up when this returns.</summary>
    public async Task ConnectTunnelAsync(string cookie)
    {
        var (head, _) = await RequestAsync("CONNECT", "/CSCOSSLC/tunnel", [("Cookie", "webvpn=" + cookie), ("X-CSTP-Version", "1"), ("X-CSTP-MTU", "1400")], null, headOnly: true);
        Assert.True(head.StatusCode == 200, $"CONNECT: HTTP {head.StatusCode} {head.Reason}");
        Address = IPAddress.Parse(head.Headers.Get("X-CSTP-Address")!);
        Mtu = int.Parse(head.Headers.Get("X-CSTP-MTU")!);
    }

    /// <summary>Writes one request (head and body in one write) and reads the response.</summary>
    public async Task<(HttpResponseHead Head, byte[] Body)> RequestAsync(string method, string target, IEnumerable<(string, string)> headers, byte[]? body, bool headOnly = false)
    {
        var sb = new StringBuilder().Append(method).Append(' ').Append(target).Append(" HTTP/1.1\r\nHost: vpn\r\nUser-Agent: AnyConnect raw-test\r\n");
        foreach (var (k, v) in headers) sb.Append(k).Append(": ").Append(v).Append("\r\n");
        if (body is not null) sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("\r\n");
        await SendAsync([.. Encoding.ASCII.GetBytes(sb.ToString()), .. body ?? []]);
        return await ReadResponseAsync(headOnly) ?? throw new InvalidOperationException($"{method} {target}: the server closed without a response");
    }

    /// <summary>The next response, or null when the server closed the connection first.</summary>
    public async Task<(HttpResponseHead Head, byte[] Body)?> ReadResponseAsync(bool headOnly = false)
    {
        using var cts = new CancellationTokenSource(Guard);
        try
        {
            var (result, head) = await _reader!.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, cts.Token);
            if (head is null)
            {
                Assert.True(result == HttpParseResult.NeedMore, $"bad response from the server: {result}");
                return null;
            }
            if (headOnly) return (head, []);
            var body = await _reader.ReadBodyAsync((int)(head.Headers.ContentLength ?? 0), cts.Token);
            return body is null ? null : (head, body);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Raw bytes in one write (one TLS record when small), after TLS if it is up, else on the bare TCP.</summary>
    public async Task SendAsync(byte[] bytes)
    {
        using var cts = new CancellationTokenSource(Guard);
        Stream s = _tls is not null ? _tls : _net;
        await s.WriteAsync(bytes, cts.Token);
        await s.FlushAsync(cts.Token);
    }

    public Task SendFrameAsync(CstpPacketType type, byte[] payload)
    {
        var frame = new byte[CstpFrame.HeaderLength + payload.Length];
        CstpFrame.Write(frame, type, payload);
        return SendAsync(frame);
    }

    /// <summary>
    /// Reads frames until a DATA frame holding an ICMP echo reply with this id and sequence; null when the
    /// connection ends or <paramref name="timeout"/> passes first.
    /// </summary>
    public async Task<byte[]?> ReceiveEchoReplyAsync(ushort id, ushort sequence, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var frame = await _reader!.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
                if (frame.Status != FrameReadStatus.Ok) return null;
                if (frame.Type != CstpPacketType.Data) continue;
                var p = frame.Payload.Span;
                if (p.Length >= 28 && p[0] >> 4 == 4 && p[9] == 1)
                {
                    int ihl = (p[0] & 0xf) * 4;
                    if (p[ihl] == 0 && BinaryPrimitives.ReadUInt16BigEndian(p[(ihl + 4)..]) == id && BinaryPrimitives.ReadUInt16BigEndian(p[(ihl + 6)..]) == sequence)
                        return p.ToArray();
                }
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>True when the server closes the connection within <paramref name="timeout"/>; frames on the way are skipped.</summary>
    public async Task<bool> WaitForCloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[16 * 1024];
        Stream s = _tls is not null ? _tls : _net;
        try
        {
            while (await s.ReadAsync(buffer, cts.Token) > 0) { }
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true; // reset by the server
        }
    }

    /// <summary>An IPv4 ICMP echo request of exactly <paramref name="totalLength"/> bytes, with valid checksums.</summary>
    public static byte[] EchoRequest(IPAddress source, IPAddress destination, ushort id, ushort sequence, int totalLength = 84)
    {
        var p = new byte[totalLength];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), sequence);
        p[8] = 64;
        p[9] = 1;
        source.GetAddressBytes().CopyTo(p, 12);
        destination.GetAddressBytes().CopyTo(p, 16);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum(p.AsSpan(0, 20)));
        p[20] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), id);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(26), sequence);
        for (int i = 28; i < totalLength; i++) p[i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), Checksum(p.AsSpan(20)));
        return p;
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if ((data.Length & 1) != 0) sum += (uint)data[^1] << 8;
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    public void Dispose()
    {
        _reader?.Dispose();
        try { _tls?.Dispose(); } catch (IOException) { }
        _net.Dispose();
    }
}
