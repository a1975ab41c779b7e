using Isotun.Client;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Transport;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A bare CSTP peer for what a well-behaved client never sends: it logs in (or reuses a cookie), CONNECTs like a
/// stock client (no extensions), and then writes whatever bytes a test gives it.
/// </summary>
internal sealed class RawCstpClient : IAsyncDisposable
{
    private readonly HttpsConnection _conn;

    private RawCstpClient(HttpsConnection conn, string cookie, int status, TunnelParameters? parameters)
    {
        _conn = conn;
        Cookie = cookie;
        Status = status;
        Parameters = parameters;
    }

    public string Cookie { get; }
    /// <summary>The HTTP status of the CONNECT reply.</summary>
    public int Status { get; }
    /// <summary>The tunnel's parameters when the CONNECT was accepted.</summary>
    public TunnelParameters? Parameters { get; }

    public static async Task<RawCstpClient> ConnectAsync(ClientOptions options, string? cookie = null, string? askAddress = null, params (string Name, string Value)[] extraHeaders)
    {
        using var cts = new CancellationTokenSource(Eventually.Deadline);
        cookie ??= await AuthClient.LoginAsync(options, cts.Token);
        var conn = await HttpsConnection.OpenAsync(options, cts.Token);
        var headers = new List<KeyValuePair<string, string>>
        {
            new("User-Agent", "raw-cstp-test"),
            new("Cookie", SessionCookie.CookieValue(cookie)),
            new("X-CSTP-Version", "1"),
            new("X-CSTP-Hostname", "raw"),
            new("X-CSTP-Base-MTU", "1500"),
            new("X-CSTP-Address-Type", "IPv6,IPv4"),
        };
        if (askAddress is not null) headers.Add(new("X-CSTP-Address", askAddress));
        foreach (var (name, value) in extraHeaders) headers.Add(new(name, value));
        var (head, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", AuthClient.HostHeader(options.Server), headers, null, true, Eventually.Deadline, cts.Token);
        return new RawCstpClient(conn, cookie, head.StatusCode, head.StatusCode == 200 ? TunnelParameters.Parse(head) : null);
    }

    /// <summary>Writes <paramref name="bytes"/> as they are; false when the server has already closed.</summary>
    public async Task<bool> SendRawAsync(byte[] bytes)
    {
        try
        {
            await _conn.Stream.WriteAsync(bytes);
            await _conn.Stream.FlushAsync();
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            return false;
        }
    }

    public Task<bool> SendFrameAsync(CstpPacketType type, ReadOnlySpan<byte> payload) => SendRawAsync(Frame(type, payload));

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
        using var cts = new CancellationTokenSource(Eventually.Deadline);
        while (true)
        {
            var frame = await _conn.Reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
            if (frame.Status != FrameReadStatus.Ok) return null;
            if (frame.Type == type) return frame;
        }
    }

    /// <summary>Reads (and drops) frames until the server closes the connection; false if it is still open at the deadline.</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        using var cts = new CancellationTokenSource(Eventually.Deadline);
        try
        {
            while (true)
            {
                var frame = await _conn.Reader.ReadFrameAsync(CstpFrame.MaxPayloadLength, cts.Token);
                if (frame.Status != FrameReadStatus.Ok) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            return true;
        }
    }

    public ValueTask DisposeAsync() => _conn.DisposeAsync();
}
