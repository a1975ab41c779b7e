using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Pki;
using Isotun.Protocol.Http;
using Isotun.Transport;

namespace Isotun.Client;

/// <summary>
/// One TLS connection from the client to a VPN server: checks the server by pin or CA, then carries
/// HTTP requests and, after CONNECT, CSTP frames. Every read is bounded in size and time.
/// </summary>
public sealed class HttpsConnection : IAsyncDisposable
{
    public const int MaxBody = 64 * 1024;

    private readonly Socket _socket;
    private readonly SslStream _tls;
    private readonly WriteCoalescingStream _under;
    private Stream _stream;
    private ResponsePrefixStream? _responses;
    private ConnectionReader? _reader;

    /// <summary>The server's address this connection went to (an IPv4 one as such, not mapped into IPv6).</summary>
    public IPAddress RemoteAddress
    {
        get
        {
            var a = ((IPEndPoint)_socket.RemoteEndPoint!).Address;
            return a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;
        }
    }

    private HttpsConnection(Socket socket)
    {
        _socket = socket;
        // The handshake is read record by record, so that a TlsRecordStream can carry the connection after it.
        _under = new WriteCoalescingStream(new SocketStream(socket), recordReads: true);
        _stream = _tls = new SslStream(_under, leaveInnerStreamOpen: false);
    }

    /// <summary>The connection's records after the handshake: on OpenSSL's connection directly (TLS 1.3), else SslStream.</summary>
    public Stream Stream => _stream;

    /// <summary>Bytes already wait in the socket's receive queue, so the next read will not block.</summary>
    public bool MorePending => SocketTuning.BytesWaiting(_socket);
    public ConnectionReader Reader => _reader ?? throw new InvalidOperationException("no TLS handshake yet");

    /// <summary>After the handshake: the records taken over where that can be done, and the reader on them.</summary>
    private void Carry()
    {
        if (TlsRecordStream.TryTake(_tls, _under) is { } records) _stream = records;
        _responses = new ResponsePrefixStream(_stream);
        _reader = new ConnectionReader(_responses);
    }
    public X509Certificate2? ServerCertificate { get; private set; }

    /// <param name="address">Where to connect instead of resolving the server's name (the address of the tunnel's first
    /// connection, for its queues and reconnects: the one kept outside the tunnel); the name still goes in the SNI.</param>
    public static async Task<HttpsConnection> OpenAsync(ClientOptions o, CancellationToken ct, IPAddress? address = null)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(o.ConnectTimeout);
        ClientTlsMaterial material;
        try
        {
            material = ClientTlsMaterial.For(o); // before the socket: a bad file leaves nothing open
        }
        catch (Exception e) when (e is Pki.PkiException or IOException or UnauthorizedAccessException)
        {
            // Checked before the first connection (exit 2); here, while reconnecting, a file being rewritten: tried again.
            throw new ClientException(ClientExitCode.Failure, $"cannot read the TLS files: {e.Message}") { Transient = true };
        }
        var host = o.Server.IdnHost;
        int port = o.Server.IsDefaultPort ? 443 : o.Server.Port;
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        SocketTuning.Apply(socket);
        try
        {
            if (address is null) await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            else await socket.ConnectAsync(new IPEndPoint(address, port), cts.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            socket.Dispose(); // whatever ended the connect, a caller's cancellation too
            if (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
                throw new ClientException(ClientExitCode.Failure, $"cannot reach {host}:{port}: {(e is SocketException se ? se.Message : "timed out")}");
            throw;
        }

        string? rejection = null;
        var conn = new HttpsConnection(socket);
        var tls = conn._tls;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            AllowRenegotiation = false,
            ClientCertificateContext = material.Identity,
            // With a pin or a CA bundle the system's trust store plays no part, so the runtime's own chain is built
            // against the bundle (or nothing) alone, offline: one chain per handshake, not the system store's.
            CertificateChainPolicy = o.ServerPin is null && material.Authorities is null ? null : ChainPolicy(material.Authorities),
            RemoteCertificateValidationCallback = (_, cert, _, errors) =>
            {
                if (cert is null) { rejection = "server sent no certificate"; return false; }
                var c = cert as X509Certificate2 ?? new X509Certificate2(cert);
                conn.ServerCertificate = c;
                if (o.ServerPin is not null)
                {
                    if (CertificatePin.Matches(c, o.ServerPin)) return true;
                    rejection = $"server certificate does not match the pin (server has {CertificatePin.Compute(c)})";
                    return false;
                }
                if (material.Authorities is not null)
                {
                    if ((errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0) { rejection = "server certificate is not issued by the given CA"; return false; }
                    if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) { rejection = $"server certificate is not valid for {host}"; return false; }
                    return errors == SslPolicyErrors.None;
                }
                if (errors == SslPolicyErrors.None) return true;
                rejection = $"server certificate is not trusted ({errors}); pass --servercert pin-sha256:… or --cafile";
                return false;
            },
        };
        try
        {
            await tls.AuthenticateAsClientAsync(options, cts.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await conn.DisposeAsync().ConfigureAwait(false); // whatever ended the handshake, a caller's cancellation too
            if (e is not (AuthenticationException or IOException or OperationCanceledException) || ct.IsCancellationRequested) throw;
            if (rejection is not null) throw new ClientException(ClientExitCode.CertificateRejected, rejection);
            throw new ClientException(ClientExitCode.Failure, $"TLS handshake with {host}:{port} failed: {(e is OperationCanceledException ? "timed out" : e.Message)}");
        }
        conn.Carry();
        return conn;
    }

    private static X509ChainPolicy ChainPolicy(X509Certificate2Collection? authorities)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        if (authorities is not null) policy.CustomTrustStore.AddRange(authorities);
        return policy;
    }

    /// <summary>Sends one request and reads the response head (and body unless <paramref name="headOnly"/>).</summary>
    public async Task<(HttpResponseHead Head, byte[] Body)> SendAsync(string method, string target, string host, IEnumerable<KeyValuePair<string, string>> headers, byte[]? body, bool headOnly, TimeSpan timeout, CancellationToken ct)
    {
        var sb = new StringBuilder();
        sb.Append(method).Append(' ').Append(target).Append(" HTTP/1.1\r\n");
        sb.Append("Host: ").Append(host).Append("\r\n");
        foreach (var (k, v) in headers) sb.Append(k).Append(": ").Append(v).Append("\r\n");
        if (body is not null) sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("\r\n");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await _stream.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()), cts.Token).ConfigureAwait(false);
            if (body is not null) await _stream.WriteAsync(body, cts.Token).ConfigureAwait(false);
            await _stream.FlushAsync(cts.Token).ConfigureAwait(false);

            var responses = _responses!;
            responses.StartResponse();
            var (result, head) = await Reader.ReadResponseHeadAsync(HttpHeadParser.DefaultMaxHeadBytes, cts.Token).ConfigureAwait(false);
            string? notHttp = responses.NotHttpPrefix();
            responses.StopRecording();
            if (head is null && notHttp is not null)
                throw new ClientException(ClientExitCode.ProtocolError, $"server's reply is not HTTP (it starts with \"{notHttp}\"): wrong port or not a VPN server?");
            if (head is null)
                throw new ClientException(ClientExitCode.ProtocolError, result == HttpParseResult.NeedMore
                    ? "server closed the connection before a complete HTTP response (truncated headers)"
                    : $"server sent a bad HTTP response ({result})") { Transient = result == HttpParseResult.NeedMore };
            if (headOnly) return (head, []);
            long len = head.Headers.ContentLength ?? -1;
            byte[]? data;
            if (len > MaxBody) throw new ClientException(ClientExitCode.ProtocolError, $"server response body of {len} bytes is too large");
            if (len >= 0) data = await Reader.ReadBodyAsync((int)len, cts.Token).ConfigureAwait(false);
            else if (head.StatusCode is 204 or 304 or 101) data = [];
            else data = await Reader.ReadToEndAsync(MaxBody, cts.Token).ConfigureAwait(false);
            if (data is null) throw new ClientException(ClientExitCode.ProtocolError, "server response body is truncated or too large");
            return (head, data);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ClientException(ClientExitCode.ProtocolError, $"server did not answer {method} in {timeout.TotalSeconds:0} s") { Transient = true };
        }
        catch (IOException e)
        {
            throw new ClientException(ClientExitCode.Failure, $"connection lost during {method}: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream != _tls) await _stream.DisposeAsync().ConfigureAwait(false);
        try { await _tls.DisposeAsync().ConfigureAwait(false); } catch (Exception) { }
        _socket.Dispose();
        _reader?.Dispose();
    }
}
