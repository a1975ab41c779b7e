using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Config;
using Isotun.Metrics;
using Isotun.Protocol.Proxy;
using Isotun.Transport.Listening;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// The server behind an edge gateway: a listener where every connection starts with a PROXY v2 header. Only configured
/// gateway addresses are served; anyone else is reset before a byte is read. The header is read exactly (never a byte
/// past it), bounded in size and time. What follows it:
/// <list type="bullet">
/// <item>plaintext (the gateway terminated TLS): the client address comes from the header's addresses, the server name
/// from PP2_TYPE_AUTHORITY and the certificate identity from PP2_TYPE_SSL, and the connection continues as any other in
/// <see cref="ServerConnection.RunAsync"/>;</item>
/// <item>with <c>proxy.tls</c>, the client's own TLS (a passthrough route): only the client address comes from the
/// header, and the connection continues as on the main listener, in <see cref="ServerConnection.RunTlsAsync"/>.</item>
/// </list>
/// </summary>
/// <remarks>
/// A terminating gateway forwards the client's certificate itself (DER, in Isotun's TLV
/// <see cref="ProxyV2.TypeClientCertificate"/>) next to its verdict (PP2_TYPE_SSL <c>verify</c> = 0). The server then
/// checks that certificate as if it had come in its own handshake: it must chain to the chosen tenant's CA and carry
/// one of that tenant's OUs. The gateway's verdict alone never admits a certificate, so a gateway whose route trusts a CA
/// shared by several tenants cannot carry one tenant's user into another. Without the certificate (a gateway that sends
/// only the CN), certificate login is refused with the reason.
/// </remarks>
internal sealed class ProxyListener(IConnectionHost server, ProxyConfig config, ILogger log) : IConnectionAdmission, IListenerEvents
{
    // Room for the usual TLVs and a forwarded client certificate.
    private const int MaxHeader = ProxyV2.DefaultMaxLength + ProxyV2.MaxClientCertificateLength;
    private readonly ServerListenerEvents _events = new(ListenerName.Proxy, server.Metrics, log);
    // At accept only the gateway's address is known: the global cap applies there; the per-source cap applies to the
    // client's address once the header names it (server.Caps, shared with the TLS listener).
    private readonly ConcurrencyCaps _acceptCap = new(server.Config.Limits.MaxConnections, int.MaxValue);
    private Socket[] _listeners = [];

    public IPEndPoint? LocalEndpoint => _listeners.FirstOrDefault()?.LocalEndPoint as IPEndPoint;

    /// <summary>Binds the listening sockets; throws, naming the address, when it cannot (the server's start then fails).</summary>
    public void Open() => _listeners = ListeningSockets.Open("PROXY v2 listener", config.Listen, 512);

    /// <summary>Closes what <see cref="Open"/> opened, for a start that failed after it.</summary>
    public void Close()
    {
        foreach (var s in _listeners) s.Dispose();
    }

    /// <summary>Accepts on the sockets <see cref="Open"/> bound, until <paramref name="stopping"/>.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        log.LogInformation("PROXY v2 listener on {Endpoint} ({Mode}); trusted gateways: {Gateways}", config.Listen,
            config.Tls ? "the client's TLS follows the header" : "plaintext after the header", string.Join(", ", config.TrustedGateways));
        var listener = new ConnectionListener(_listeners, this, this, server.NextConnectionId);
        await listener.RunAsync((c, ct) => HandleAsync(c.Socket, c.Remote, c.Id, ct), () => server.Config.Limits.DrainTime, stopping).ConfigureAwait(false);
    }

    /// <summary>Only configured gateways are served; anyone else is reset before a byte is read.</summary>
    AdmissionRefusal? IConnectionAdmission.Admit(IPAddress source)
    {
        if (!config.Trusts(source)) return AdmissionRefusal.Untrusted;
        _acceptCap.Update(server.Config.Limits.MaxConnections, int.MaxValue);
        return _acceptCap.Admit(source);
    }

    void IConnectionAdmission.Release(IPAddress source) => _acceptCap.Release(source);

    void IListenerEvents.Refused(IPEndPoint remote, AdmissionRefusal reason) =>
        Refused(Result(reason), reason == AdmissionRefusal.Untrusted ? $"{remote.Address} is not a trusted gateway" : $"from gateway {remote.Address}: {reason.ToLabel()}");

    private static ProxyResult Result(AdmissionRefusal refusal) => refusal switch
    {
        AdmissionRefusal.Untrusted => ProxyResult.Untrusted,
        AdmissionRefusal.SourceCap => ProxyResult.SourceCap,
        _ => ProxyResult.GlobalCap,
    };

    void IListenerEvents.AcceptFailed(AcceptFailure error, TimeSpan backoff) => _events.AcceptFailed(error, backoff);

    void IListenerEvents.HandlerFailed(long id, Exception error) => log.LogError(error, "PROXY connection conn={Conn} failed", id);

    private async Task HandleAsync(Socket socket, IPEndPoint gateway, long id, CancellationToken stopping)
    {
        socket.NoDelay = true;
        ProxyHeader? header;
        // The header is read exactly, so the socket is left at the first byte after it (plaintext, or a ClientHello).
        using (var headerStream = new NetworkStream(socket, ownsSocket: false))
        {
            try
            {
                (header, ProxyResult? failure) = await ReadHeaderAsync(headerStream, stopping).ConfigureAwait(false);
                if (header is null)
                {
                    Refuse(socket, failure!.Value, $"from gateway {gateway.Address}: {failure.Value.ToLabel()}");
                    return;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                server.Metrics.ProxyConnection(ProxyResult.ClosedEarly);
                socket.Dispose();
                return;
            }
        }

        if (header.Command == ProxyCommand.Local)
        {
            // A gateway's health check: nothing to serve.
            server.Metrics.ProxyConnection(ProxyResult.Local);
            socket.Dispose();
            return;
        }

        var client = header.Source ?? gateway;
        if (server.Caps.Admit(client.Address) is { } capped)
        {
            Refuse(socket, Result(capped), $"client {client.Address} via gateway {gateway.Address}: {capped.ToLabel()}");
            return;
        }

        server.Metrics.ProxyConnection(ProxyResult.Accepted);
        var connection = new ServerConnection(server, id, log);
        var certificate = config.Tls ? null : Certificate(header);
        try
        {
            if (config.Tls)
            {
                // A passthrough route: the client's own TLS follows. Only its address comes from the header.
                await connection.RunTlsAsync(socket, stopping, client).ConfigureAwait(false);
                return;
            }
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            await connection.RunAsync(stream, new PeerInfo(client, header.Authority, certificate), stopping).ConfigureAwait(false);
        }
        finally
        {
            certificate?.Raw?.Dispose();
            server.Caps.Release(client.Address);
        }
    }

    /// <summary>Reads exactly one header: the 16-byte prefix, then the length it declares (bounded).</summary>
    private async Task<(ProxyHeader? Header, ProxyResult? Failure)> ReadHeaderAsync(NetworkStream stream, CancellationToken stopping)
    {
        var buffer = new byte[MaxHeader];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        cts.CancelAfter(config.HeaderTimeout);
        try
        {
            int got = 0;
            while (got < ProxyV2.PrefixLength)
            {
                int n = await stream.ReadAsync(buffer.AsMemory(got, ProxyV2.PrefixLength - got), cts.Token).ConfigureAwait(false);
                if (n == 0) return (null, ProxyResult.ClosedEarly);
                got += n;
                // Refuse a non-PROXY peer on its first bytes rather than waiting for sixteen.
                if (ProxyV2Parser.TryReadLength(buffer.AsSpan(0, got), MaxHeader, out _) is ProxyParseResult.NotProxy)
                    return (null, ProxyResult.NotProxy);
            }

            var result = ProxyV2Parser.TryReadLength(buffer.AsSpan(0, ProxyV2.PrefixLength), MaxHeader, out int total);
            if (result != ProxyParseResult.Ok) return (null, result == ProxyParseResult.NotProxy ? ProxyResult.NotProxy : ProxyResult.Malformed);
            await stream.ReadExactlyAsync(buffer.AsMemory(ProxyV2.PrefixLength, total - ProxyV2.PrefixLength), cts.Token).ConfigureAwait(false);
            result = ProxyV2Parser.TryParse(buffer.AsSpan(0, total), MaxHeader, out var header, out _);
            return result == ProxyParseResult.Ok ? (header, null) : (null, ProxyResult.Malformed);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return (null, ProxyResult.Timeout);
        }
        catch (EndOfStreamException)
        {
            return (null, ProxyResult.ClosedEarly);
        }
    }

    /// <summary>
    /// The client certificate the gateway forwarded, for the authenticator to check against the chosen tenant; null
    /// when the client presented none. A certificate the gateway could not verify, or did not forward, carries the
    /// reason it cannot be used.
    /// </summary>
    internal static ClientCertificateInfo? Certificate(ProxyHeader header)
    {
        if (header.Ssl is not { CertificatePresented: true } ssl) return null;
        if (header.ClientCertificate is not { } der)
            return new ClientCertificateInfo(ssl.CommonName, [], "the gateway did not forward the client certificate, so no group can check it");
        X509Certificate2 cert;
        try
        {
            cert = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException)
        {
            return new ClientCertificateInfo(ssl.CommonName, [], "the gateway forwarded a malformed client certificate");
        }
        var info = Authenticator.Inspect(cert);
        return ssl.CertificateVerified ? info : info with { Problem = "the gateway could not verify the client certificate" };
    }

    private void Refuse(Socket socket, ProxyResult result, string detail)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
        Refused(result, detail);
    }

    private void Refused(ProxyResult result, string detail)
    {
        server.Metrics.ProxyConnection(result);
        // Refusals can come in floods; the metric counts them all, the log shows a few per result and period.
        if (server.LogThrottle.Allow("proxy " + result.ToLabel(), out long suppressed))
            log.LogWarning("PROXY listener closed a connection: {Detail} ({Suppressed} similar suppressed)", detail, suppressed);
    }
}
