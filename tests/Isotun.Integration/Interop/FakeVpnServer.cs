using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Linux;
using Isotun.Pki;

namespace Isotun.Integration.Interop;

/// <summary>
/// A deliberately bad VPN server for the client's hostile-input tests: a TLS listener on 127.0.0.1 inside a
/// namespace (the socket is created there), with a self-signed certificate, handing every connection to a
/// scripted handler that says as much or as little of the protocol as the case needs.
/// </summary>
public sealed class FakeVpnServer : IDisposable
{
    private readonly Socket _listener;
    private readonly X509Certificate2 _certificate;
    private readonly Func<FakeExchange, Task> _handler;
    private readonly bool _tls;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    public FakeVpnServer(string ns, Func<FakeExchange, Task> handler, bool tls = true)
    {
        _handler = handler;
        _tls = tls;
        _certificate = SelfSigned();
        _listener = NetworkNamespace.Run(ns, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            s.Listen(16);
            return s;
        });
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port { get; }
    public string Url => $"https://127.0.0.1:{Port}/";
    public string Pin => CertificatePin.Compute(_certificate);

    /// <summary>The request lines the server read, in order (e.g. "POST /", "CONNECT /CSCOSSLC/tunnel").</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Handler failures other than the client going away: a broken test, reported by the test.</summary>
    public ConcurrentQueue<Exception> Errors { get; } = new();

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var net = new NetworkStream(client, ownsSocket: false);
        try
        {
            Stream stream = net;
            if (_tls)
            {
                var tls = new SslStream(net, leaveInnerStreamOpen: true);
                using var hs = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                hs.CancelAfter(TimeSpan.FromSeconds(10));
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, hs.Token);
                stream = tls;
            }
            await using (stream)
                await _handler(new FakeExchange(stream, Requests, _stop.Token));
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException
                                   or System.Security.Authentication.AuthenticationException)
        {
            // The client gave up or the test ended: that is what these tests provoke.
        }
        catch (Exception e)
        {
            Errors.Enqueue(e);
        }
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=bad.server.test", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Round trip through PKCS#12 so the private key is usable by the TLS stack.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try { _acceptLoop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        _certificate.Dispose();
    }
}

/// <summary>One accepted connection of a <see cref="FakeVpnServer"/>, after TLS.</summary>
public sealed class FakeExchange(Stream stream, ConcurrentQueue<string> requests, CancellationToken stop)
{
    private readonly List<byte> _pending = [];

    /// <summary>Reads one request (head and Content-Length body); null if the client closed first.</summary>
    public async Task<(string Method, string Target, string Head, string Body)?> ReadRequestAsync()
    {
        var buf = new byte[16 * 1024];
        int headEnd;
        while ((headEnd = IndexOfHeadEnd()) < 0)
        {
            int n = await stream.ReadAsync(buf, stop);
            if (n == 0) return null;
            _pending.AddRange(buf.AsSpan(0, n));
        }
        var head = Encoding.ASCII.GetString(_pending.GetRange(0, headEnd).ToArray());
        _pending.RemoveRange(0, headEnd + 4);
        int length = 0;
        foreach (var line in head.Split("\r\n"))
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) length = int.Parse(line["Content-Length:".Length..].Trim());
        while (_pending.Count < length)
        {
            int n = await stream.ReadAsync(buf, stop);
            if (n == 0) return null;
            _pending.AddRange(buf.AsSpan(0, n));
        }
        var body = Encoding.UTF8.GetString(_pending.GetRange(0, length).ToArray());
        _pending.RemoveRange(0, length);
        var first = head.Split("\r\n")[0].Split(' ');
        requests.Enqueue($"{first[0]} {(first.Length > 1 ? first[1] : "")}");
        return (first[0], first.Length > 1 ? first[1] : "", head, body);
    }

    private int IndexOfHeadEnd()
    {
        for (int i = 0; i + 3 < _pending.Count; i++)
            if (_pending[i] == '\r' && _pending[i + 1] == '\n' && _pending[i + 2] == '\r' && _pending[i + 3] == '\n') return i;
        return -1;
    }

    public async Task WriteAsync(string text) => await WriteAsync(Encoding.UTF8.GetBytes(text));

    public async Task WriteAsync(byte[] bytes)
    {
        await stream.WriteAsync(bytes, stop);
        await stream.FlushAsync(stop);
    }

    /// <summary>Says nothing more and keeps the connection open until the client closes it (or the test ends).</summary>
    public async Task HoldAsync()
    {
        var buf = new byte[4096];
        while (await stream.ReadAsync(buf, stop) > 0) { }
    }
}
