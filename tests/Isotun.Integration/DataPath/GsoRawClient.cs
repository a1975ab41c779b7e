using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Linux;
using Isotun.Pki;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Offload;
using Isotun.Transport;

namespace Isotun.Integration.DataPath;

/// <summary>
/// A hand-driven tunnel client for the GSO extension: a TCP socket made inside the client namespace, TLS accepted
/// by the lab's pin, CONNECT with a cookie and, if asked, <c>X-Isotun-Extensions</c>; then raw CSTP frames, good
/// or bad. Every wait is bounded by <see cref="Guard"/>, so a test cannot hang.
/// </summary>
internal sealed class GsoRawClient : IDisposable
{
    public static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    private readonly SslStream _tls;
    private readonly ConnectionReader _reader;

    private GsoRawClient(SslStream tls)
    {
        _tls = tls;
        _reader = new ConnectionReader(tls);
    }

    public IPAddress Address { get; private set; } = IPAddress.None;
    public int Mtu { get; private set; }

    public static async Task<GsoRawClient> ConnectAsync(string ns, IPEndPoint server, string pin)
    {
        var socket = NetworkNamespace.Run(ns, () =>
        {
            var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try { s.Connect(server); return s; }
            catch { s.Dispose(); throw; }
        });
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            using var cts = new CancellationTokenSource(Guard);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = server.Address.ToString(),
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && CertificatePin.Matches(cert as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(cert.GetRawCertData()), pin),
            }, cts.Token);
            return new GsoRawClient(tls);
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    /// <summary>CONNECT with the cookie; returns the response head (the tunnel is up on 200).</summary>
    public async Task<HttpResponseHead> ConnectTunnelAsync(string cookie, string? extensions, params (string Name, string Value)[] headers)
    {
        var head = await TryConnectTunnelAsync(cookie, extensions, headers);
        Assert.True(head.StatusCode == 200, $"CONNECT: HTTP {head.StatusCode} {head.Reason}");
        Address = IPAddress.Parse(head.Headers.Get("X-CSTP-Address")!);
        Mtu = int.Parse(head.Headers.Get("X-CSTP-MTU")!);
        return head;
    }

    /// <summary>CONNECT with the cookie and any further headers; returns the response head, whatever its status.</summary>
    public async Task<HttpResponseHead> TryConnectTunnelAsync(string cookie, string? extensions, params (string Name, string Value)[] headers)
    {
        var sb = new StringBuilder("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn\r\nUser-Agent: AnyConnect gso-raw-test\r\n")
            .Append("Cookie: webvpn=").Append(cookie).Append("\r\nX-CSTP-Version: 1\r\nX-CSTP-MTU: 1400\r\n");
        if (extensions is not null) sb.Append(IsotunExtensions.Header).Append(": ").Append(extensions).Append("\r\n");
        foreach (var (name, value) in headers) sb.Append(name).Append(": ").Append(value).Append("\r\n");
        await SendAsync(Encoding.ASCII.GetBytes(sb.Append("\r\n").ToString()));
        using var cts = new CancellationTokenSource(Guard);
        var (result, head) = await _reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, cts.Token);
        Assert.True(head is not null, $"CONNECT: no response ({result})");
        return head!;
    }

    public async Task SendAsync(byte[] bytes)
    {
        using var cts = new CancellationTokenSource(Guard);
        await _tls.WriteAsync(bytes, cts.Token);
        await _tls.FlushAsync(cts.Token);
    }

    public Task SendFrameAsync(CstpPacketType type, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[CstpFrame.HeaderLength + payload.Length];
        CstpFrame.Write(frame, type, payload);
        return SendAsync(frame);
    }

    /// <summary>An IsotunGso frame: the virtio header (little-endian) and the packet.</summary>
    public Task SendGsoAsync(VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        var payload = new byte[VirtioNetHeader.Length + packet.Length];
        header.Write(payload);
        packet.CopyTo(payload.AsSpan(VirtioNetHeader.Length));
        return SendFrameAsync(CstpPacketType.IsotunGso, payload);
    }

    /// <summary>
    /// Reads frames until an IP packet (from a DATA frame, or an IsotunGso frame without its header) satisfies
    /// <paramref name="match"/>; null when the connection ends or the guard passes first.
    /// </summary>
    public async Task<(CstpPacketType Type, byte[] Packet)?> ReceiveAsync(Func<byte[], bool> match)
    {
        using var cts = new CancellationTokenSource(Guard);
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
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            return null;
        }
    }

    /// <summary>Sends an ICMP echo to <paramref name="target"/> as a DATA frame and waits for the reply.</summary>
    public async Task<(CstpPacketType Type, byte[] Packet)?> EchoAsync(IPAddress target, ushort sequence, bool asGsoFrame = false)
    {
        var request = Packets.EchoRequest(Address, target, 0x150, sequence);
        if (asGsoFrame) await SendGsoAsync(new VirtioNetHeader(), request);
        else await SendFrameAsync(CstpPacketType.Data, request);
        return await ReceiveAsync(p => Packets.IsEchoReply(p, 0x150, sequence));
    }

    /// <summary>True when the server closes the connection within the guard; frames on the way are skipped.</summary>
    public async Task<bool> WaitForCloseAsync()
    {
        using var cts = new CancellationTokenSource(Guard);
        var buffer = new byte[64 * 1024];
        try
        {
            while (await _tls.ReadAsync(buffer, cts.Token) > 0) { }
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

    public void Dispose()
    {
        _reader.Dispose();
        try { _tls.Dispose(); } catch (IOException) { }
    }
}

/// <summary>Packets for the raw client: ICMP echoes and TCP super-packets with correct checksums.</summary>
internal static class Packets
{
    public static byte[] EchoRequest(IPAddress source, IPAddress destination, ushort id, ushort sequence, int length = 84)
    {
        var p = new byte[length];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), sequence);
        p[8] = 64;
        p[9] = 1;
        source.GetAddressBytes().CopyTo(p, 12);
        destination.GetAddressBytes().CopyTo(p, 16);
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        p[20] = 8;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), id);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(26), sequence);
        for (int i = 28; i < p.Length; i++) p[i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), (ushort)~Checksum.Fold(Checksum.Sum(p.AsSpan(20))));
        return p;
    }

    public static bool IsEchoReply(byte[] p, ushort id, ushort sequence) =>
        p.Length >= 28 && p[0] >> 4 == 4 && p[9] == 1 && p[20] == 0
        && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(24)) == id && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(26)) == sequence;

    /// <summary>
    /// A TCP super-packet of <paramref name="segments"/> full segments (an ACK flow with timestamps, not part of any
    /// connection) as an Isotun peer sends it: header and packet, CHECKSUM_PARTIAL, made by the GRO merge itself.
    /// </summary>
    public static (VirtioNetHeader Header, byte[] Packet) SuperPacket(IPAddress source, IPEndPoint destination, ushort sourcePort, int segments, int mss = 1348)
    {
        var gro = new TcpCoalescer();
        for (int i = 0; i < segments; i++)
        {
            var segment = Segment(source, destination, sourcePort, 0x10000000u + (uint)(i * mss), mss);
            Assert.True(i == 0 ? gro.TryStart(segment) : gro.TryAppend(segment));
        }
        var framed = gro.Flush().ToArray();
        return (VirtioNetHeader.Read(framed), framed[VirtioNetHeader.Length..]);
    }

    private static byte[] Segment(IPAddress source, IPEndPoint destination, ushort sourcePort, uint seq, int payload)
    {
        var p = new byte[52 + payload];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        source.GetAddressBytes().CopyTo(p, 12);
        destination.Address.GetAddressBytes().CopyTo(p, 16);
        Checksum.WriteIpv4HeaderChecksum(p, 20);
        var t = p.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], (ushort)destination.Port);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], 0x20000000);
        t[12] = 8 << 4;
        t[13] = 0x10;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 502);
        t[20] = 1; t[21] = 1; t[22] = 8; t[23] = 10;
        for (int i = 0; i < payload; i++) p[52 + i] = (byte)(i + seq);
        Checksum.WriteL4Checksum(p, 4, 6, 20, 16);
        return p;
    }
}
