using System.Net;
using System.Net.Sockets;
using Isotun.Gateway;
using Isotun.Gateway.Configuration;
using Isotun.Pki;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Gateway;

/// <summary>A backend on loopback that records what each connection sent and answers with a fixed reply.</summary>
internal sealed class FakeBackend : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();

    public FakeBackend(byte[]? reply = null, int port = 0)
    {
        _listener = new(IPAddress.Loopback, port);
        _listener.Start();
        _ = Task.Run(() => AcceptAsync(reply ?? "backend-says-hi"u8.ToArray()));
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;
    public int Accepted => Received.Count;
    public List<MemoryStream> Received { get; } = [];

    private async Task AcceptAsync(byte[] reply)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            var sink = new MemoryStream();
            lock (Received) Received.Add(sink);
            _ = Task.Run(async () =>
            {
                using var c = client;
                var s = c.GetStream();
                var buf = new byte[65536];
                bool replied = false;
                try
                {
                    int n;
                    while ((n = await s.ReadAsync(buf, _stop.Token)) > 0)
                    {
                        lock (sink) sink.Write(buf, 0, n);
                        if (!replied) { replied = true; await s.WriteAsync(reply, _stop.Token); }
                    }
                }
                catch (Exception) { }
            });
        }
    }

    public byte[] Bytes(int connection)
    {
        var s = Received[connection];
        lock (s) return s.ToArray();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}

/// <summary>A gateway on 127.0.0.1:0 built from YAML in a temp directory, with a PKI for terminating routes.</summary>
internal sealed class GatewayHarness : IAsyncDisposable
{
    private CancellationTokenSource _stop = new();
    private Task? _run;

    public GatewayHarness()
    {
        Pki = new PkiDirectory(Dir.File("pki"));
        Pki.InitCa();
        Server = Pki.IssueServer("vpn.initech.example", [], []);
        Client = Pki.IssueClient("initech", "alice");
    }

    public TempDirectory Dir { get; } = new();
    public PkiDirectory Pki { get; }
    public IssuedCertificate Server { get; }
    public IssuedCertificate Client { get; }
    public EdgeGateway? Gateway { get; private set; }
    public string ConfigPath => Dir.File("gateway.yaml");
    public IPEndPoint Endpoint => Gateway!.LocalEndpoint!;
    public GatewayMetrics Metrics => Gateway!.Metrics;

    /// <summary>What the gateway logged (from <see cref="Start"/>).</summary>
    public Isotun.UnitTests.Core.Logs.RecordingLogger Log { get; } = new();

    public void Start(string yaml, TimeProvider? time = null)
    {
        File.WriteAllText(ConfigPath, yaml);
        var loaded = GatewayConfigLoader.Load(ConfigPath);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        Gateway = new EdgeGateway(loaded.Config!, Log.Factory, time);
        Gateway.Start();
        _run = Gateway.RunAsync(_stop.Token);
    }

    /// <summary>Stops the gateway and starts a new one from the same config file and files, as a restart does.</summary>
    public async Task RestartAsync()
    {
        _stop.Cancel();
        if (_run is not null) { try { await _run; } catch (Exception) { } }
        if (Gateway is not null) await Gateway.DisposeAsync();
        _stop = new CancellationTokenSource();
        var loaded = GatewayConfigLoader.Load(ConfigPath);
        Assert.True(loaded.Ok, string.Join("\n", loaded.Errors));
        Gateway = new EdgeGateway(loaded.Config!, NullLoggerFactory.Instance);
        Gateway.Start();
        _run = Gateway.RunAsync(_stop.Token);
    }

    public Socket Connect()
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000, SendTimeout = 10_000 };
        s.Connect(Endpoint);
        return s;
    }

    /// <summary>Sends bytes and reads until the gateway closes (or the timeout); returns what came back, null on reset.</summary>
    public byte[]? SendAndDrain(byte[] data, bool halfClose = true)
    {
        using var s = Connect();
        try
        {
            s.Send(data);
            if (halfClose) s.Shutdown(SocketShutdown.Send);
            var ms = new MemoryStream();
            var buf = new byte[4096];
            int n;
            while ((n = s.Receive(buf)) > 0) ms.Write(buf, 0, n);
            return ms.ToArray();
        }
        catch (SocketException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_run is not null) { try { await _run; } catch (Exception) { } }
        if (Gateway is not null) await Gateway.DisposeAsync();
        Dir.Dispose();
    }
}
