using System.Net;
using System.Net.Sockets;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A TCP relay on loopback in front of a server: it passes bytes both ways until <see cref="Freeze"/>, after which the
/// connections it holds carry nothing and stay open (a peer gone silent, as behind a dead link). Connections made
/// after the freeze pass again.
/// </summary>
internal sealed class FreezingRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket, Socket, CancellationTokenSource)> _pairs = [];
    private readonly Lock _gate = new();
    private readonly Task _accepting;

    public FreezingRelay(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections after this many are frozen from the start (their TCP accepted, no byte carried).</summary>
    public int PassFirst { get; init; } = int.MaxValue;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted { get; private set; }

    /// <summary>The connections held now stop carrying bytes, and stay open.</summary>
    public void Freeze()
    {
        lock (_gate)
            foreach (var (_, _, frozen) in _pairs) frozen.Cancel();
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _target), _stop.Token);
                var frozen = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                lock (_gate)
                {
                    _pairs.Add((client, server, frozen));
                    Accepted++;
                    if (Accepted > PassFirst) frozen.Cancel();
                }
                _ = PumpAsync(client, server, frozen.Token);
                _ = PumpAsync(server, client, frozen.Token);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested) { }
    }

    private static async Task PumpAsync(Socket from, Socket to, CancellationToken frozen)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, frozen);
                if (n == 0) { to.Shutdown(SocketShutdown.Send); return; }
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, frozen);
            }
        }
        catch (Exception) { } // frozen, or closed
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _accepting; } catch (Exception) { }
        lock (_gate)
            foreach (var (a, b, frozen) in _pairs)
            {
                a.Dispose();
                b.Dispose();
                frozen.Dispose();
            }
    }
}
