using Isotun.Metrics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Isotun.Gateway.Configuration;
using Isotun.Gateway.Forwarding;
using Isotun.Logs;
using Isotun.Protocol.Proxy;
using Isotun.Transport;
using Isotun.Protocol.Tls;

namespace Isotun.Gateway;

/// <summary>One client connection: pre-read the ClientHello, pick a route, then pass through or terminate.</summary>
public sealed partial class EdgeGateway
{
    private async Task HandleAsync(Socket socket, IPEndPoint remote, long id, CancellationToken stopping)
    {
        socket.NoDelay = true;
        var runtime = Volatile.Read(ref _runtime); // this connection keeps this config, whatever reloads happen
        var limits = runtime.Config.Limits;
        using var reader = new ClientHelloReader();

        Metrics.Active(ConnectionMode.Preread, 1);
        HelloOutcome? outcome;
        try
        {
            outcome = await PrereadAsync(socket, reader, limits.PrereadTimeout, stopping).ConfigureAwait(false);
        }
        finally
        {
            Metrics.Active(ConnectionMode.Preread, -1);
        }

        RouteRuntime? route = null;
        if (outcome is null)
        {
            switch (reader.Outcome)
            {
                case ClientHelloOutcome.ServerName:
                    route = runtime.Router.Match(reader.ServerName);
                    outcome = route is null ? HelloOutcome.NoRoute : HelloOutcome.Routed;
                    break;
                case ClientHelloOutcome.NoServerName:
                    outcome = HelloOutcome.NoSni;
                    if (runtime.Config.NoSni == UnmatchedAction.Default) route = runtime.Router.Default;
                    break;
                case ClientHelloOutcome.NotTls:
                    outcome = HelloOutcome.NotTls;
                    if (runtime.Config.NonTls == UnmatchedAction.Default && runtime.Router.Default is { Route.Mode: RouteMode.Passthrough } d) route = d;
                    break;
                case ClientHelloOutcome.TooLarge:
                    outcome = HelloOutcome.TooLarge;
                    break;
                default:
                    outcome = HelloOutcome.Malformed;
                    break;
            }
        }

        Metrics.Hello(outcome.Value);
        if (route is null)
        {
            // Nothing has been sent to any backend: close, count, and hold it against the source address.
            var rejection = outcome switch
            {
                HelloOutcome.NoSni => GatewayRejection.NoSni,
                HelloOutcome.NotTls => GatewayRejection.NotTls,
                HelloOutcome.NoRoute => GatewayRejection.NoRoute,
                _ => (GatewayRejection?)null,
            };
            if (rejection is { } r) Metrics.Rejected(r);
            Failure(remote);
            string label = outcome.Value.ToLabel();
            if (_throttle.Allow(label, out long suppressed)) GatewayLog.Refused(_log, id, remote.ToString(), label, suppressed);
            Abort(socket);
            return;
        }

        GatewayLog.Forwarding(_log, id, route.Name, route.Mode.ToLabel(), remote, reader.ServerName ?? "-"); // the address is formatted only when the event is logged
        Metrics.Active(route.Mode, 1);
        try
        {
            if (route.Route.Mode == RouteMode.Passthrough)
                await PassthroughAsync(socket, remote, reader, route, limits, stopping).ConfigureAwait(false);
            else
                await TerminateAsync(socket, remote, id, reader, route, limits, stopping).ConfigureAwait(false);
        }
        finally
        {
            Metrics.Active(route.Mode, -1);
        }
    }

    /// <summary>Reads until the reader decides; null when it did, else why not (a timeout, or the peer closed).</summary>
    private async Task<HelloOutcome?> PrereadAsync(Socket socket, ClientHelloReader reader, TimeSpan timeout, CancellationToken stopping)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        cts.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var memory = reader.GetMemory();
                if (memory.IsEmpty) return null; // the reader has reported TooLarge
                int n = await socket.ReceiveAsync(memory, SocketFlags.None, cts.Token).ConfigureAwait(false);
                if (n == 0) return HelloOutcome.ClosedEarly;
                if (reader.Advance(n) != ClientHelloOutcome.NeedMore) return null;
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return HelloOutcome.Timeout;
        }
        catch (SocketException)
        {
            return HelloOutcome.ClosedEarly;
        }
    }

    private async Task PassthroughAsync(Socket client, IPEndPoint remote, ClientHelloReader reader, RouteRuntime route, GatewayLimits limits, CancellationToken stopping)
    {
        using var backend = await ConnectBackendAsync(route, remote.Address, limits, stopping).ConfigureAwait(false);
        if (backend is null)
        {
            Abort(client);
            return;
        }

        Metrics.Forwarded(route.Name, route.Mode);
        await using var backendStream = new NetworkStream(backend, ownsSocket: false);
        if (route.Route.ProxyProtocol)
        {
            var header = new ProxyHeader(ProxyCommand.Proxy, remote, client.LocalEndPoint as IPEndPoint, reader.ServerName);
            await backendStream.WriteAsync(ProxyV2Writer.ToArray(header), stopping).ConfigureAwait(false);
        }

        // Replay exactly the bytes consumed while routing: the backend sees the client's TLS stream from its first byte.
        await backendStream.WriteAsync(reader.Buffered, stopping).ConfigureAwait(false);
        Metrics.BytesUp(reader.Buffered.Length);
        reader.Dispose(); // its buffers go back now, not when the relay ends: a relay may last for days
        await using var clientStream = new NetworkStream(client, ownsSocket: false);
        var end = await Relay.RunAsync(clientStream, backendStream,
            () => { ShutdownSend(client); return ValueTask.CompletedTask; },
            () => { ShutdownSend(backend); return ValueTask.CompletedTask; },
            Metrics, stopping, limits.IdleTimeout, _time).ConfigureAwait(false);
        if (end == RelayEnd.Idle) RelayIdle(route);
    }

    private async Task TerminateAsync(Socket client, IPEndPoint remote, long id, ClientHelloReader reader, RouteRuntime route, GatewayLimits limits, CancellationToken stopping)
    {
        // The handshake's first flight (key exchange and signature, a millisecond of CPU) is made on a pool thread, not
        // on the epoll thread that read the ClientHello, whose other sockets would wait for it (see IoThreads).
        await IoThreads.LeaveAsync();
        // A client's reset reads as an end here, not as an exception (a reset costs a thrown exception with its stack
        // trace rendered as text on the runtime's socket streams: see SocketStream), and the relay is told it was one.
        var network = new SocketStream(client);
        await using var tls = new SslStream(new PrefixedStream(reader.Buffered.ToArray(), network), leaveInnerStreamOpen: false);
        reader.Dispose(); // copied: its buffers go back now, not when the relay ends
        var started = _time.GetTimestamp();
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping))
        {
            cts.CancelAfter(limits.HandshakeTimeout);
            try
            {
                await tls.AuthenticateAsServerAsync(route.Tls!, cts.Token).ConfigureAwait(false);
                NativeTls.ReleaseBuffers(tls); // an idle terminated connection then holds no TLS record buffers
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                HandshakeFailed(client, remote, id, route, GatewayHandshake.Timeout, started);
                return;
            }
            // CryptographicException: a client certificate the runtime's own look at it cannot parse (OpenSSL took it).
            catch (Exception e) when (e is AuthenticationException or IOException or SocketException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
            {
                HandshakeFailed(client, remote, id, route, GatewayHandshake.Failed, started);
                return;
            }
        }

        // The client certificate, checked against this route's CA; the verdict travels to the backend in PP2_TYPE_SSL.
        var flags = ProxyClientFlags.Ssl;
        uint verify = 0;
        string? commonName = null;
        byte[]? der = null;
        var resumed = NativeTls.Resumed(tls);
        if (tls.RemoteCertificate is { } presented)
        {
            // The handshake's last flight completed on an epoll thread; building a chain (offline, but over the
            // client's certificates and the runtime's stores) is not work for it.
            await IoThreads.LeaveAsync();
            der = presented.GetRawCertData();
            using var cert = X509CertificateLoader.LoadCertificate(der);
            // A resumed session's certificate was presented in the handshake that made the session, not on this
            // connection (TLS 1.3 allows none with a PSK): PP2_CLIENT_CERT_SESS without PP2_CLIENT_CERT_CONN.
            flags |= resumed == true ? ProxyClientFlags.CertificateInSession : ProxyClientFlags.CertificateOnConnection | ProxyClientFlags.CertificateInSession;
            verify = route.Verify(cert) ? 0u : 1u;
            commonName = SafeTlvString(CommonName(cert));
            // The backend checks the certificate itself against the tenant it picks; one too large to forward is not sent.
            if (der.Length > ProxyV2.MaxClientCertificateLength) der = null;
        }

        bool verified = tls.RemoteCertificate is not null && verify == 0;
        if (route.Route.Terminate!.ClientCertificateRequired && !verified)
        {
            HandshakeFailed(client, remote, id, route, GatewayHandshake.BadClientCertificate, started);
            return;
        }

        Metrics.Handshake(route.Name, GatewayHandshake.Ok, _time.GetElapsedTime(started),
            resumed is { } r ? r ? HandshakeKind.Resumed : HandshakeKind.Full : null);
        using var backend = await ConnectBackendAsync(route, remote.Address, limits, stopping).ConfigureAwait(false);
        if (backend is null)
        {
            Abort(client);
            return;
        }

        Metrics.Forwarded(route.Name, route.Mode);
        await using var backendStream = new NetworkStream(backend, ownsSocket: false);
        if (route.Route.ProxyProtocol)
        {
            var ssl = new ProxySslInfo(flags, verify, VersionLabel(tls.SslProtocol), commonName, SafeTlvString(tls.NegotiatedCipherSuite.ToString()));
            var header = new ProxyHeader(ProxyCommand.Proxy, remote, client.LocalEndPoint as IPEndPoint, reader.ServerName, ssl, ClientCertificate: der);
            await backendStream.WriteAsync(ProxyV2Writer.ToArray(header), stopping).ConfigureAwait(false);
        }

        var end = await Relay.RunAsync(tls, backendStream,
            async () => await tls.ShutdownAsync().ConfigureAwait(false),
            () => { ShutdownSend(backend); return ValueTask.CompletedTask; },
            Metrics, stopping, limits.IdleTimeout, _time, clientReset: () => network.PeerReset).ConfigureAwait(false);
        if (end == RelayEnd.Idle) RelayIdle(route);
    }

    private void RelayIdle(RouteRuntime route) => Metrics.Closed(route.Name, RelayClose.Idle);

    private void HandshakeFailed(Socket client, IPEndPoint remote, long id, RouteRuntime route, GatewayHandshake result, long started)
    {
        Metrics.Handshake(route.Name, result, _time.GetElapsedTime(started));
        Failure(remote);
        if (_throttle.Allow("handshake-" + result.ToLabel(), out long suppressed))
            GatewayLog.Refused(_log, id, remote.ToString(), $"TLS handshake on route {route.Name}: {result.ToLabel()}", suppressed);
        Abort(client);
    }

    /// <summary>
    /// A connection to the route's backend for <paramref name="client"/>: its first healthy backend, then the next ones
    /// in its order when a connect fails (each failure marks that backend down); null when none answers.
    /// </summary>
    private async Task<Socket?> ConnectBackendAsync(RouteRuntime route, IPAddress client, GatewayLimits limits, CancellationToken stopping)
    {
        var pool = route.Backends;
        foreach (int i in pool.Order(client))
        {
            var target = pool.Backends[i];
            Socket? backend = null;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            cts.CancelAfter(limits.ConnectTimeout);
            try
            {
                // Made inside: a socket that cannot be made (no IPv6 here, no descriptors left) fails this backend, and the next is tried.
                backend = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await backend.ConnectAsync(target, cts.Token).ConfigureAwait(false);
                // A connect that works says the backend is up (a route of one backend is not probed).
                if (!pool.IsUp(i))
                {
                    pool.MarkUp(i);
                    if (_throttle.Allow("backend-up-" + route.Name, out _)) GatewayLog.BackendUp(_log, route.Name, target);
                }
                return backend;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                backend?.Dispose();
                if (stopping.IsCancellationRequested) return null;
                Metrics.BackendFailure(route.Name);
                if (pool.IsUp(i) && pool.Backends.Count > 1 && _throttle.Allow("backend-down-" + route.Name, out _))
                    GatewayLog.BackendDown(_log, route.Name, target, "a connect failed");
                pool.MarkDown(i);
                if (_throttle.Allow("backend-" + route.Name, out _))
                    GatewayLog.BackendFailed(_log, route.Name, target, e is OperationCanceledException ? "connect timed out" : e.Message);
            }
        }
        return null;
    }

    /// <summary>The certificate's subject CN, or null when its subject cannot be read (the peer wrote it).</summary>
    private static string? CommonName(X509Certificate2 cert)
    {
        try
        {
            return cert.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }

    private static string VersionLabel(SslProtocols protocol) => protocol switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
        _ => protocol.ToString(),
    };

    /// <summary>The value if it can travel in a PROXY v2 string TLV (1-255 bytes, no control characters), else null.</summary>
    private static string? SafeTlvString(string? value)
    {
        if (string.IsNullOrEmpty(value) || System.Text.Encoding.UTF8.GetByteCount(value) > ProxyV2.MaxStringLength) return null;
        foreach (char c in value)
            if (c < 0x20 || c == 0x7F) return null;
        return value;
    }

    private static void ShutdownSend(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Closes with a reset: a refused peer gets no graceful close, and the gateway keeps no TIME_WAIT for it.</summary>
    private static void Abort(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
    }
}
