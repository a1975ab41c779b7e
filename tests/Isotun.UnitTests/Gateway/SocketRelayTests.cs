using System.Net;
using System.Net.Sockets;
using Isotun.Gateway;
using Isotun.Gateway.Forwarding;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Gateway;

/// <summary>
/// The passthrough relay between the two sockets themselves: bulk moves with splice once a direction has carried
/// <see cref="SocketPump.SpliceAfter"/> bytes, and nothing is lost, reordered or left hanging on the way: not when the
/// receiver is slow (its socket full), not at a half-close, not at a reset or a vanished receiver. Real TCP on
/// loopback on both sides.
/// </summary>
public sealed class SocketRelayTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60); // only against hangs
    private readonly GatewayMetrics _metrics = new();
    private readonly (Socket Outer, Socket Inner) _client = LoopbackTcp.Pair();
    private readonly (Socket Outer, Socket Inner) _backend = LoopbackTcp.Pair();
    private readonly RelayStats _stats = new();

    private Task<RelayEnd> Start(CancellationToken stopping = default, TimeSpan idle = default, TimeProvider? time = null) =>
        Relay.RunAsync(_client.Inner, _backend.Inner, _metrics, stopping, idle, time, _stats);

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
    public async Task Bulk_both_ways_arrives_whole_and_in_order_and_moves_by_splice_after_the_first_bytes()
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
        Assert.Equal(up.Length + down.Length, _stats.Copied + _stats.Spliced);
        // Each direction copies its first bytes (at most one buffer beyond the threshold), then splices.
        Assert.True(_stats.Copied < up.Length + down.Length - 4 * SocketPump.SpliceAfter, $"copied {_stats.Copied}, spliced {_stats.Spliced}");
        Assert.True(_stats.Spliced > 0);
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
        Assert.Equal(down.Length, _stats.Copied + _stats.Spliced);
        Assert.True(_stats.Stalls > 0, "the client's socket was never full while the relay spliced"); // so the way round a full socket ran
    }

    [Fact]
    public async Task A_short_exchange_is_copied_and_never_takes_a_pipe()
    {
        var relay = Start();
        await _client.Outer.SendAsync("PING\n"u8.ToArray(), SocketFlags.None);
        var buffer = new byte[5];
        Assert.Equal(5, await _backend.Outer.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask().WaitAsync(Guard));
        await _backend.Outer.SendAsync("PONG\n"u8.ToArray(), SocketFlags.None);
        Assert.Equal(5, await _client.Outer.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask().WaitAsync(Guard));
        Assert.Equal("PONG\n"u8.ToArray(), buffer);

        _client.Outer.Shutdown(SocketShutdown.Send);
        _backend.Outer.Shutdown(SocketShutdown.Send);
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
        Assert.Equal(10, _stats.Copied);
        Assert.Equal(0, _stats.Spliced);
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
    public async Task A_reset_while_splicing_names_the_side_that_reset(bool clientResets)
    {
        var relay = Start();
        var (sender, receiver) = clientResets ? (_client.Outer, _backend.Outer) : (_backend.Outer, _client.Outer);
        var bulk = Pattern(1 << 20, 6);
        await SendAllAsync(sender, bulk, close: false).WaitAsync(Guard);
        var got = new byte[bulk.Length];
        for (int at = 0; at < got.Length;) at += await receiver.ReceiveAsync(got.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        Assert.Equal(bulk, got);
        Assert.True(_stats.Spliced > 0);

        sender.LingerState = new LingerOption(true, 0);
        sender.Close(); // RST
        Assert.Equal(clientResets ? RelayEnd.ClientError : RelayEnd.BackendError, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_receiver_that_vanished_mid_bulk_ends_the_relay_and_not_the_process()
    {
        var relay = Start();
        var sending = SendAllAsync(_client.Outer, Pattern(32 << 20, 7), close: true);
        var first = new byte[SocketPump.SpliceAfter * 2];
        for (int at = 0; at < first.Length;) at += await _backend.Outer.ReceiveAsync(first.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        _backend.Outer.LingerState = new LingerOption(true, 0);
        _backend.Outer.Close(); // the relay's writes now meet EPIPE or a reset

        Assert.Equal(RelayEnd.BackendError, await relay.WaitAsync(Guard));
        _client.Inner.Dispose(); // as the gateway closes its side when the relay ends
        await Assert.ThrowsAnyAsync<SocketException>(() => sending.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_stop_ends_a_splicing_relay_as_cancelled()
    {
        using var stop = new CancellationTokenSource();
        var relay = Start(stop.Token);
        var bulk = Pattern(1 << 20, 8);
        await SendAllAsync(_client.Outer, bulk, close: false).WaitAsync(Guard);
        var got = new byte[bulk.Length];
        for (int at = 0; at < got.Length;) at += await _backend.Outer.ReceiveAsync(got.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        Assert.True(_stats.Spliced > 0); // the upward direction waits in splice mode now

        stop.Cancel();
        Assert.Equal(RelayEnd.Cancelled, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_splicing_relay_that_goes_silent_ends_at_the_idle_timeout()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var relay = Start(idle: TimeSpan.FromMinutes(5), time: clock);
        var bulk = Pattern(1 << 20, 9);
        await SendAllAsync(_client.Outer, bulk, close: false).WaitAsync(Guard);
        var got = new byte[bulk.Length];
        for (int at = 0; at < got.Length;) at += await _backend.Outer.ReceiveAsync(got.AsMemory(at), SocketFlags.None).AsTask().WaitAsync(Guard);
        Assert.True(_stats.Spliced > 0);

        clock.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        Assert.Equal(RelayEnd.Idle, await relay.WaitAsync(Guard));
    }

    public void Dispose()
    {
        foreach (var s in new[] { _client.Outer, _client.Inner, _backend.Outer, _backend.Inner }) s.Dispose();
        _metrics.Dispose();
    }
}
