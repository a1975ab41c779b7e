using System.Net;
using System.Net.Sockets;
using Isotun.Gateway;
using Isotun.Gateway.Forwarding;

namespace Isotun.UnitTests.Gateway;

/// <summary>
/// The relay between a client and a backend loses, reorders and leaves hanging nothing: not in bulk both ways, not when a
/// receiver is slow (its socket full), not at a half-close; a reset or a vanished receiver ends it naming the side, and a
/// stop ends it as cancelled. Real TCP on loopback on both sides.
/// </summary>
public sealed class RelayTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60); // only against hangs
    private readonly GatewayMetrics _metrics = new();
    private readonly (Socket Outer, Socket Inner) _client = LoopbackTcp.Pair();
    private readonly (Socket Outer, Socket Inner) _backend = LoopbackTcp.Pair();

    private Task<RelayEnd> Start(CancellationToken stopping = default) => Relay.RunAsync(
        new NetworkStream(_client.Inner), new NetworkStream(_backend.Inner),
        () => { _client.Inner.Shutdown(SocketShutdown.Send); return ValueTask.CompletedTask; },
        () => { _backend.Inner.Shutdown(SocketShutdown.Send); return ValueTask.CompletedTask; },
        _metrics, stopping);

    /// <summary>Bytes that differ along their whole length (a byte lost or reordered anywhere shows).</summary>
    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static async Task SendAllAsync(Socket socket, byte[] data, bool close)
    {
        // Uneven pieces, as a real sender writes.
        for (int at = 0, piece = 1000; at < data.Length; piece = piece * 7 % 90_001 + 1)
        {
            int n = Math.Min(piece, data.Length - at);
            await socket.SendAsync(data.AsMemory(at, n), SocketFlags.None);
            at += n;
        }
        if (close) socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Reads to the end of stream; <paramref name="pause"/> between reads makes a slow receiver.</summary>
    private static async Task<byte[]> ReceiveAllAsync(Socket socket, TimeSpan pause = default)
    {
        var got = new MemoryStream();
        var buffer = new byte[8192];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0) return got.ToArray();
            got.Write(buffer, 0, n);
            if (pause > TimeSpan.Zero && got.Length % (256 * 1024) < n) await Task.Delay(pause);
        }
    }

    [Fact]
    public async Task Bulk_both_ways_arrives_whole_and_in_order()
    {
        var up = Pattern(8 << 20, 1);
        var down = Pattern(6 << 20, 2);
        var relay = Start();
        var atBackend = ReceiveAllAsync(_backend.Outer);
        var atClient = ReceiveAllAsync(_client.Outer);
        await Task.WhenAll(SendAllAsync(_client.Outer, up, close: true), SendAllAsync(_backend.Outer, down, close: true)).WaitAsync(Guard);

        Assert.Equal(up, await atBackend.WaitAsync(Guard));
        Assert.Equal(down, await atClient.WaitAsync(Guard));
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_slow_receiver_loses_nothing_when_its_socket_is_full()
    {
        _client.Outer.ReceiveBufferSize = 16 * 1024;
        _client.Inner.SendBufferSize = 16 * 1024;
        var down = Pattern(4 << 20, 3);
        var relay = Start();
        var atClient = ReceiveAllAsync(_client.Outer, pause: TimeSpan.FromMilliseconds(30));
        await SendAllAsync(_backend.Outer, down, close: true).WaitAsync(Guard);
        Assert.Equal(down, await atClient.WaitAsync(Guard));

        _client.Outer.Shutdown(SocketShutdown.Send);
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_half_close_after_bulk_is_passed_on_and_the_other_way_goes_on()
    {
        var up = Pattern(2 << 20, 4);
        var relay = Start();
        var atBackend = ReceiveAllAsync(_backend.Outer);
        await SendAllAsync(_client.Outer, up, close: true).WaitAsync(Guard);
        Assert.Equal(up, await atBackend.WaitAsync(Guard)); // the end of stream came after the last byte

        // The client stopped sending; the backend's answer still reaches it.
        var answer = Pattern(1 << 20, 5);
        var atClient = ReceiveAllAsync(_client.Outer);
        await SendAllAsync(_backend.Outer, answer, close: true).WaitAsync(Guard);
        Assert.Equal(answer, await atClient.WaitAsync(Guard));
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_reset_names_the_side_that_reset(bool clientResets)
    {
        var relay = Start();
        var (sender, receiver) = clientResets ? (_client.Outer, _backend.Outer) : (_backend.Outer, _client.Outer);
        var bulk = Pattern(1 << 20, 6);
        await SendAllAsync(sender, bulk, close: false).WaitAsync(Guard);
        var got = new byte[bulk.Length];
        for (int at = 0; at < got.Length;) at += await receiver.ReceiveAsync(got.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        Assert.Equal(bulk, got);

        sender.LingerState = new LingerOption(true, 0);
        sender.Close(); // RST
        Assert.Equal(clientResets ? RelayEnd.ClientError : RelayEnd.BackendError, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_receiver_that_vanished_mid_bulk_ends_the_relay()
    {
        var relay = Start();
        var sending = SendAllAsync(_client.Outer, Pattern(32 << 20, 7), close: true);
        var first = new byte[512 * 1024];
        for (int at = 0; at < first.Length;) at += await _backend.Outer.ReceiveAsync(first.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        _backend.Outer.LingerState = new LingerOption(true, 0);
        _backend.Outer.Close(); // the relay's writes now meet EPIPE or a reset

        Assert.Equal(RelayEnd.BackendError, await relay.WaitAsync(Guard));
        _client.Inner.Dispose(); // as the gateway closes its side when the relay ends
        await Assert.ThrowsAnyAsync<SocketException>(() => sending.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_stop_ends_a_relay_as_cancelled()
    {
        using var stop = new CancellationTokenSource();
        var relay = Start(stop.Token);
        var bulk = Pattern(1 << 20, 8);
        await SendAllAsync(_client.Outer, bulk, close: false).WaitAsync(Guard);
        var got = new byte[bulk.Length];
        for (int at = 0; at < got.Length;) at += await _backend.Outer.ReceiveAsync(got.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);

        stop.Cancel();
        Assert.Equal(RelayEnd.Cancelled, await relay.WaitAsync(Guard));
    }

    public void Dispose()
    {
        foreach (var s in new[] { _client.Outer, _client.Inner, _backend.Outer, _backend.Inner }) s.Dispose();
        _metrics.Dispose();
    }
}
