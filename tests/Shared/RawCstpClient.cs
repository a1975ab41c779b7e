using System.Buffers.Binary;
using System.Net;
using System.Text;
using Isotun.Client;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Offload;
using Isotun.Transport;
using Xunit;

namespace Isotun.TestSupport;

/// <summary>
/// The one raw CSTP peer of the test suites, for what a well-behaved client never sends: HTTP written by hand, CSTP
/// frames written raw, good or bad, at any point (even before TLS). Every wait is bounded by <see cref="Guard"/>, so a
/// test cannot hang. Compiled into both test projects; each adds its own ways to open one (a partial class): the
/// in-process tests over loopback TLS, the integration tests from inside a client namespace.
/// </summary>
public sealed partial class RawCstpClient : IDisposable, IAsyncDisposable
{
    public static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    private readonly Stream _stream;
    private readonly IAsyncDisposable? _owner;
    private readonly ConnectionReader _reader;
    private readonly string _host;

    /// <param name="stream">What the client reads and writes: TLS once it is up, else the bare TCP stream.</param>
    /// <param name="owner">Disposed with the client instead of <paramref name="stream"/>, when something else owns the stream.</param>
    /// <param name="host">The Host header of its requests.</param>
    private RawCstpClient(Stream stream, IAsyncDisposable? owner = null, string host = "vpn")
    {
        _stream = stream;
        _owner = owner;
        _host = host;
        _reader = new ConnectionReader(stream);
    }

    /// <summary>The cookie of the last login or CONNECT.</summary>
    public string? Cookie { get; private set; }

    /// <summary>The HTTP status of the CONNECT reply, 0 before one.</summary>
    public int Status { get; private set; }

    /// <summary>The tunnel's parameters when the CONNECT was accepted.</summary>
    public TunnelParameters? Parameters { get; private set; }

    public IPAddress Address => Parameters?.Address ?? IPAddress.None;
    public int Mtu => Parameters?.Mtu ?? 0;

    /// <summary>Logs in with the XML exchange and returns the webvpn cookie (or fails the test).</summary>
    public async Task<string> LoginAsync(string user, string password, string group)
    {
        var xml = AuthXml.BuildReply("v9.01-raw", [new("username", user), new("password", password)], group, null);
        var (head, body) = await RequestAsync("POST", "/", [("X-Aggregate-Auth", "1"), ("Content-Type", "application/xml")], Encoding.UTF8.GetBytes(xml));
        Assert.True(head.StatusCode == 200, $"login: HTTP {head.StatusCode}: {Encoding.UTF8.GetString(body)}");
        foreach (var setCookie in head.Headers.GetAll("Set-Cookie"))
            if (SessionCookie.TryParseSetCookie(setCookie, out var name, out var value) && name == SessionCookie.Name && value.Length > 0)
                return Cookie = value;
        Assert.Fail("login gave no webvpn cookie: " + Encoding.UTF8.GetString(body));
        return "";
    }

    /// <summary>
    /// CONNECT with the cookie, as a stock client sends it, and any further headers; <paramref name="extensions"/> offers
    /// Isotun extensions (<see cref="IsotunExtensions.Header"/>). The tunnel is up on 200.
    /// </summary>
    public async Task<HttpResponseHead> TryConnectTunnelAsync(string cookie, string? extensions = null, string? askAddress = null, params (string Name, string Value)[] headers)
    {
        Cookie = cookie;
        List<(string, string)> all =
        [
            ("Cookie", SessionCookie.CookieValue(cookie)),
            ("X-CSTP-Version", "1"),
            ("X-CSTP-Hostname", "raw"),
            ("X-CSTP-Base-MTU", "1500"),
            ("X-CSTP-MTU", "1400"),
            ("X-CSTP-Address-Type", "IPv6,IPv4"),
        ];
        if (askAddress is not null) all.Add(("X-CSTP-Address", askAddress));
        if (extensions is not null) all.Add((IsotunExtensions.Header, extensions));
        all.AddRange(headers);
        var (head, _) = await RequestAsync("CONNECT", "/CSCOSSLC/tunnel", all, null, headOnly: true);
        Status = head.StatusCode;
        Parameters = head.StatusCode == 200 ? TunnelParameters.Parse(head) : null;
        return head;
    }

    /// <summary>CONNECT that must succeed (or the test fails).</summary>
    public async Task<HttpResponseHead> ConnectTunnelAsync(string cookie, string? extensions = null, string? askAddress = null, params (string Name, string Value)[] headers)
    {
        var head = await TryConnectTunnelAsync(cookie, extensions, askAddress, headers);
        Assert.True(head.StatusCode == 200, $"CONNECT: HTTP {head.StatusCode} {head.Reason}");
        return head;
    }

    /// <summary>Writes one request (head and body in one write) and reads the response.</summary>
    public async Task<(HttpResponseHead Head, byte[] Body)> RequestAsync(string method, string target, IEnumerable<(string, string)> headers, byte[]? body, bool headOnly = false)
    {
        var sb = new StringBuilder().Append(method).Append(' ').Append(target).Append(" HTTP/1.1\r\nHost: ").Append(_host).Append("\r\nUser-Agent: AnyConnect raw-test\r\n");
        foreach (var (k, v) in headers) sb.Append(k).Append(": ").Append(v).Append("\r\n");
        if (body is not null) sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("\r\n");
        Assert.True(await SendAsync([.. Encoding.ASCII.GetBytes(sb.ToString()), .. body ?? []]), $"{method} {target}: the server closed before the request went out");
        return await ReadResponseAsync(headOnly) ?? throw new InvalidOperationException($"{method} {target}: the server closed without a response");
    }

    /// <summary>The next response, or null when the server closed the connection first.</summary>
    public async Task<(HttpResponseHead Head, byte[] Body)?> ReadResponseAsync(bool headOnly = false)
    {
        using var cts = new CancellationTokenSource(Guard);
        try
        {
            var (result, head) = await _reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, cts.Token);
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

    /// <summary>Raw bytes in one write (one TLS record when small); false when the server has closed already.</summary>
    public async Task<bool> SendAsync(byte[] bytes)
    {
        using var cts = new CancellationTokenSource(Guard);
        try
        {
            await _stream.WriteAsync(bytes, cts.Token);
            await _stream.FlushAsync(cts.Token);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            return false;
        }
    }

    public Task<bool> SendFrameAsync(CstpPacketType type, ReadOnlySpan<byte> payload) => SendAsync(Frame(type, payload));

    /// <summary>An IsotunGso frame: the virtio header (little-endian) and the packet.</summary>
    public Task<bool> SendGsoAsync(VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        var payload = new byte[VirtioNetHeader.Length + packet.Length];
        header.Write(payload);
        packet.CopyTo(payload.AsSpan(VirtioNetHeader.Length));
        return SendFrameAsync(CstpPacketType.IsotunGso, payload);
    }

    /// <summary>A CSTP frame as it goes on the wire.</summary>
    public static byte[] Frame(CstpPacketType type, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[CstpFrame.HeaderLength + payload.Length];
        CstpFrame.Write(frame, type, payload);
        return frame;
    }

    /// <summary>The next frame of type <paramref name="type"/> from the server, skipping others; null when the connection ended first.</summary>
    public async Task<FrameRead?> ReadFrameAsync(CstpPacketType type)
    {
        using var cts = new CancellationTokenSource(Guard);
        try
        {
            while (true)
            {
                var frame = await _reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
                if (frame.Status != FrameReadStatus.Ok) return null;
                if (frame.Type == type) return frame;
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads frames until an IP packet (from a DATA frame, or an IsotunGso frame without its header) satisfies
    /// <paramref name="match"/>; null when the connection ends or <paramref name="timeout"/> (default <see cref="Guard"/>) passes first.
    /// </summary>
    public async Task<(CstpPacketType Type, byte[] Packet)?> ReceiveAsync(Func<byte[], bool> match, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Guard);
        try
        {
            while (true)
            {
                var frame = await _reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
                if (frame.Status != FrameReadStatus.Ok) return null;
                byte[] packet;
                if (frame.Type == CstpPacketType.Data) packet = frame.Payload.ToArray();
                else if (frame.Type == CstpPacketType.IsotunGso && frame.Payload.Length > VirtioNetHeader.Length) packet = frame.Payload[VirtioNetHeader.Length..].ToArray();
                else continue;
                if (match(packet)) return (frame.Type, packet);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>Sends an ICMP echo from the tunnel address to <paramref name="target"/> (as a DATA or an IsotunGso frame) and waits for the reply.</summary>
    public async Task<(CstpPacketType Type, byte[] Packet)?> EchoAsync(IPAddress target, ushort sequence, bool asGsoFrame = false)
    {
        const ushort id = 0x150;
        var request = EchoRequest(Address, target, id, sequence);
        if (asGsoFrame) await SendGsoAsync(new VirtioNetHeader(), request);
        else await SendFrameAsync(CstpPacketType.Data, request);
        return await ReceiveAsync(p => IsEchoReply(p, id, sequence));
    }

    /// <summary>The next ICMP echo reply with this id and sequence; null when the connection ends or <paramref name="timeout"/> passes first.</summary>
    public async Task<byte[]?> ReceiveEchoReplyAsync(ushort id, ushort sequence, TimeSpan timeout) =>
        (await ReceiveAsync(p => IsEchoReply(p, id, sequence), timeout))?.Packet;

    /// <summary>True when the server closes the connection within <paramref name="timeout"/> (default <see cref="Guard"/>); whatever comes first is skipped.</summary>
    public async Task<bool> WaitForCloseAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Guard);
        var buffer = new byte[64 * 1024];
        try
        {
            while (await _stream.ReadAsync(buffer, cts.Token) > 0) { }
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
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
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        p[20] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), id);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(26), sequence);
        for (int i = 28; i < totalLength; i++) p[i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), (ushort)~Checksum.Fold(Checksum.Sum(p.AsSpan(20))));
        return p;
    }

    /// <summary>Is <paramref name="p"/> an IPv4 ICMP echo reply with this id and sequence?</summary>
    public static bool IsEchoReply(byte[] p, ushort id, ushort sequence)
    {
        if (p.Length < 28 || p[0] >> 4 != 4 || p[9] != 1) return false;
        int ihl = (p[0] & 0xf) * 4;
        return p.Length >= ihl + 8 && p[ihl] == 0
            && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(ihl + 4)) == id && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(ihl + 6)) == sequence;
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        try
        {
            if (_owner is not null) await _owner.DisposeAsync();
            else await _stream.DisposeAsync();
        }
        catch (IOException)
        {
            // The server may have reset the connection; it is closed either way.
        }
    }
}
