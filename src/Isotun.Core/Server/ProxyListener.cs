using System.Net;
using System.Net.Sockets;
using Isotun.Config;
using Isotun.Protocol.Proxy;
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
/// The gateway sends only the certificate's CN (PP2_SUBTYPE_SSL_CN) and whether it verified it against the route's CA
/// (<c>verify</c> = 0). A certificate the gateway verified counts as carrying the OUs of the tenant selected by the
/// AUTHORITY (the tenant whose <c>server-names</c> lists it), and its CN names the user. When the AUTHORITY selects no
/// tenant, the certificate names none, and certificate login is refused.
/// </remarks>
public sealed class ProxyListener(VpnServer server, ProxyConfig config, ILogger log)
{
    private const int MaxHeader = ProxyV2.DefaultMaxLength;
    private readonly ProxyListenerMetrics _metrics = ProxyListenerMetrics.Instance;
    private Socket? _listener;

    public IPEndPoint? LocalEndpoint => _listener?.LocalEndPoint as IPEndPoint;

    public async Task RunAsync(CancellationToken stopping)
    {
        _listener = new Socket(config.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            _listener.Bind(config.Listen);
            _listener.Listen(512);
        }
        catch (SocketException e)
        {
            log.LogError("PROXY v2 listener cannot listen on {Endpoint}: {Error}", config.Listen, e.Message);
            throw;
        }

        log.LogInformation("PROXY v2 listener on {Endpoint} ({Mode}); trusted gateways: {Gateways}", config.Listen,
            config.Tls ? "the client's TLS follows the header" : "plaintext after the header", string.Join(", ", config.TrustedGateways));
        var connections = new List<Task>();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _listener.AcceptAsync(stopping).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    continue;
                }

                var remote = (IPEndPoint)socket.RemoteEndPoint!;
                if (!config.Trusts(remote.Address))
                {
                    Refuse(socket, "untrusted", $"{remote.Address} is not a trusted gateway");
                    continue;
                }

                var task = Task.Run(() => HandleAsync(socket, remote, stopping), CancellationToken.None);
                lock (connections)
                {
                    connections.RemoveAll(c => c.IsCompleted);
                    connections.Add(task);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        _listener.Dispose();
        Task[] pending;
        lock (connections) pending = [.. connections];
        try
        {
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
    }

    private async Task HandleAsync(Socket socket, IPEndPoint gateway, CancellationToken stopping)
    {
        socket.NoDelay = true;
        ProxyHeader? header;
        // The header is read exactly, so the socket is left at the first byte after it (plaintext, or a ClientHello).
        using (var headerStream = new NetworkStream(socket, ownsSocket: false))
        {
            try
            {
                (header, string? failure) = await ReadHeaderAsync(headerStream, stopping).ConfigureAwait(false);
                if (header is null)
                {
                    Refuse(socket, failure!, $"from gateway {gateway.Address}: {failure}");
                    return;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                _metrics.Connection("closed-early");
                socket.Dispose();
                return;
            }
        }

        if (header.Command == ProxyCommand.Local)
        {
            // A gateway's health check: nothing to serve.
            _metrics.Connection("local");
            socket.Dispose();
            return;
        }

        _metrics.Connection("accepted");
        var connection = new ServerConnection(server, server.NextConnectionId(), log);
        try
        {
            if (config.Tls)
            {
                // A passthrough route: the client's own TLS follows. Only its address comes from the header.
                await connection.RunTlsAsync(socket, stopping, header.Source ?? gateway).ConfigureAwait(false);
                return;
            }
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            await connection.RunAsync(stream, new PeerInfo(header.Source ?? gateway, header.Authority, Certificate(header)), stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            log.LogError(e, "PROXY connection from {Gateway} failed", gateway);
        }
        finally
        {
            socket.Dispose();
        }
    }

    /// <summary>Reads exactly one header: the 16-byte prefix, then the length it declares (bounded).</summary>
    private async Task<(ProxyHeader? Header, string? Failure)> ReadHeaderAsync(NetworkStream stream, CancellationToken stopping)
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
                if (n == 0) return (null, "closed-early");
                got += n;
                // Refuse a non-PROXY peer on its first bytes rather than waiting for sixteen.
                if (ProxyV2Parser.TryReadLength(buffer.AsSpan(0, got), MaxHeader, out _) is ProxyParseResult.NotProxy)
                    return (null, "not-proxy");
            }

            var result = ProxyV2Parser.TryReadLength(buffer.AsSpan(0, ProxyV2.PrefixLength), MaxHeader, out int total);
            if (result != ProxyParseResult.Ok) return (null, result == ProxyParseResult.NotProxy ? "not-proxy" : "malformed");
            await stream.ReadExactlyAsync(buffer.AsMemory(ProxyV2.PrefixLength, total - ProxyV2.PrefixLength), cts.Token).ConfigureAwait(false);
            result = ProxyV2Parser.TryParse(buffer.AsSpan(0, total), MaxHeader, out var header, out _);
            return result == ProxyParseResult.Ok ? (header, null) : (null, "malformed");
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return (null, "timeout");
        }
        catch (EndOfStreamException)
        {
            return (null, "closed-early");
        }
    }

    /// <summary>The certificate identity the gateway vouched for; null when the client presented none.</summary>
    private ClientCertificateInfo? Certificate(ProxyHeader header)
    {
        if (header.Ssl is not { CertificatePresented: true } ssl) return null;
        var tenant = server.Authenticator.TenantForServerName(header.Authority);
        IReadOnlyList<string> ous = tenant is null ? [] : tenant.Config.EffectiveOus;
        return ssl.CertificateVerified
            ? new ClientCertificateInfo(ssl.CommonName, ous, true, null)
            : new ClientCertificateInfo(ssl.CommonName, ous, false, "the gateway could not verify the client certificate");
    }

    private void Refuse(Socket socket, string result, string detail)
    {
        _metrics.Connection(result);
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
        // Refusals can come in floods; the metric counts them all, the log shows a few per result and period.
        if (server.LogThrottle.Allow("proxy " + result, out long suppressed))
            log.LogWarning("PROXY listener closed a connection: {Detail} ({Suppressed} similar suppressed)", detail, suppressed);
    }
}
