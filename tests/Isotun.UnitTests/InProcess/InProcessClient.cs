using System.Net;
using Isotun.Client;
using Isotun.Tun;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// A real <see cref="VpnClient"/> in the test process, with a memory TUN: a test injects packets into <see cref="Tun"/>
/// as local programs would send them, and takes what the client wrote.
/// </summary>
internal sealed class InProcessClient : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();

    private InProcessClient(ClientOptions options, bool uso)
    {
        Options = options;
        Network = new MemoryClientNetwork(options.Offload, uso);
        Client = new VpnClient(options, NullLogger.Instance, Network);
        Run = Task.Run(() => Client.RunAsync(_stop.Token));
    }

    public ClientOptions Options { get; }
    public VpnClient Client { get; }
    public MemoryClientNetwork Network { get; }
    public Task<ClientExitCode> Run { get; }
    public MemoryTun Tun => Network.Tun!;
    public TunnelParameters Parameters => Client.Parameters!;
    public IPAddress Address => Parameters.Address;
    public bool Offload => Tun.Offload;

    /// <summary>Starts the client without waiting (for tests of failing logins: await <see cref="Run"/>).</summary>
    public static InProcessClient Start(ClientOptions options, bool uso = true) => new(options, uso);

    /// <summary>
    /// Starts the client and waits until its data path carries packets: a probe from each TUN queue reaches the
    /// server's TUN (whose probes are then taken away). Throws what the client threw if it failed.
    /// </summary>
    public static async Task<InProcessClient> ConnectAsync(InProcessServer server, ClientOptions options, bool uso = true, string? tenant = null)
    {
        var client = new InProcessClient(options, uso);
        await Eventually.True(() => client.Run.IsCompleted || (client.Network.Tun is not null && client.Client.Parameters is not null), "the client did not connect");
        if (client.Run.IsCompleted) await client.Run;
        await client.CarriesAsync(server, tenant);
        return client;
    }

    /// <summary>
    /// Waits until a probe from each TUN queue reaches the server's TUN (whose probes are then taken away): a TUN thread
    /// may read before the connection's writer is published, at the start or after a reconnect.
    /// </summary>
    public async Task CarriesAsync(InProcessServer server, string? tenant = null)
    {
        var serverTun = server.Tun(tenant);
        for (int q = 0; q < Tun.Queues.Length; q++)
        {
            var probe = Packets.Framed(Packets.Probe(Address), Offload);
            var sent = DateTime.MinValue;
            int queue = q;
            await Eventually.True(() =>
            {
                while (serverTun.TryTake(out var p, TimeSpan.Zero))
                    if (Packets.IsProbe(Packets.Unframed(p, serverTun.Offload))) return true;
                if (DateTime.UtcNow - sent > TimeSpan.FromMilliseconds(500))
                {
                    Tun.Inject(probe, queue);
                    sent = DateTime.UtcNow;
                }
                return false;
            }, $"no probe from client TUN queue {q} reached the server");
        }
    }

    /// <summary>Injects <paramref name="packet"/> (a bare IP packet) into TUN queue <paramref name="queue"/>, with an empty virtio header when the TUN has offloads.</summary>
    public void Send(byte[] packet, int queue = 0) => Assert.True(Tun.Inject(Packets.Framed(packet, Offload), queue), "the client's TUN queue is full");

    /// <summary>
    /// A request from <paramref name="local"/> (the client's address by default) to <paramref name="far"/> (a host
    /// behind the server by default) comes out of the server's TUN (of <paramref name="tenant"/>, the server's first by
    /// default) as sent, and the reply out of the client's.
    /// </summary>
    public void RoundTrip(InProcessServer server, IPAddress? local = null, IPAddress? far = null, string? tenant = null)
    {
        local ??= Address;
        far ??= Packets.Far4;
        var tun = server.Tun(tenant);
        var request = Packets.Udp(local, far, 40000, 53, "question"u8);
        Send(request);
        Assert.Equal(request, Packets.Take(tun, $"the packet from {local} did not come out of the server's TUN"));

        var reply = Packets.Udp(far, local, 53, 40000, "answer"u8);
        Assert.True(tun.Inject(Packets.Framed(reply, tun.Offload)));
        Assert.Equal(reply, Receive($"the reply to {local} did not come out of the client's TUN"));
    }

    /// <summary>The next bare IP packet the client wrote into its TUN.</summary>
    public byte[] Receive(string because) => Packets.Take(Tun, because);

    /// <summary>Stops the client as Ctrl-C does (it says goodbye to the server) and returns how it ended.</summary>
    public async Task<ClientExitCode> StopAsync()
    {
        _stop.Cancel();
        return await Run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { await Run.WaitAsync(TimeSpan.FromSeconds(30)); } catch (Exception) { }
    }
}
