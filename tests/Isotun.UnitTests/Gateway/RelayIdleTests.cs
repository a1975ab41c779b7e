using System.Net;
using System.Net.Sockets;
using Isotun.Gateway;
using Isotun.Gateway.Forwarding;
using Microsoft.Extensions.Time.Testing;

namespace Isotun.UnitTests.Gateway;

/// <summary>
/// A relay that carries nothing either way for the idle timeout is ended; any byte either way starts the wait again;
/// zero keeps relays for ever. Real loopback sockets on both sides, and a fake clock: no test waits for real time.
/// </summary>
public sealed class RelayIdleTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30); // only against hangs
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private readonly GatewayMetrics _metrics = new();
    private readonly (Socket Outer, Socket Inner) _client = LoopbackTcp.Pair();
    private readonly (Socket Outer, Socket Inner) _backend = LoopbackTcp.Pair();

    private Task<RelayEnd> Start(TimeSpan idle) => Relay.RunAsync(
        new NetworkStream(_client.Inner), new NetworkStream(_backend.Inner),
        () => { _client.Inner.Shutdown(SocketShutdown.Send); return ValueTask.CompletedTask; },
        () => { _backend.Inner.Shutdown(SocketShutdown.Send); return ValueTask.CompletedTask; },
        _metrics, CancellationToken.None, idle, _clock);

    /// <summary>One byte from <paramref name="from"/> through the relay, read on <paramref name="to"/>: the relay has seen it.</summary>
    private static void Through(Socket from, Socket to)
    {
        from.Send([42]);
        var one = new byte[1];
        to.ReceiveTimeout = (int)Guard.TotalMilliseconds;
        Assert.Equal(1, to.Receive(one));
    }

    /// <summary>Gives the relay's timer continuation time to run after the fake clock moved (only to show it did not end).</summary>
    private static async Task<bool> EndsSoon(Task task) => await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(2))) == task;

    [Fact]
    public async Task Traffic_either_way_keeps_a_relay_and_silence_for_the_timeout_ends_it()
    {
        var relay = Start(TimeSpan.FromMinutes(5));
        Through(_client.Outer, _backend.Outer);
        _clock.Advance(TimeSpan.FromMinutes(4));
        Assert.False(await EndsSoon(relay));
        Through(_backend.Outer, _client.Outer); // the other direction counts as well
        _clock.Advance(TimeSpan.FromMinutes(4));
        Assert.False(await EndsSoon(relay));

        _clock.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.Equal(RelayEnd.Idle, await relay.WaitAsync(Guard));
    }

    /// <summary>
    /// A client that reads nothing while the backend sends, and sends a byte now and then itself: the relay is never
    /// silent, but its downstream write waits for ever. A write that waits the idle timeout ends the relay.
    /// </summary>
    [Fact]
    public async Task A_write_that_waits_the_timeout_ends_the_relay_though_the_other_way_trickles()
    {
        _client.Outer.ReceiveBufferSize = 4096;
        _client.Inner.SendBufferSize = 4096;
        var relay = Start(TimeSpan.FromMinutes(5));
        var flood = Task.Run(() =>
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (true) _backend.Outer.Send(chunk);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        });
        await Task.Delay(TimeSpan.FromSeconds(2)); // the relay's write to the client is stuck by then: its buffers are small
        for (int i = 0; i < 2; i++)
        {
            _clock.Advance(TimeSpan.FromMinutes(2));
            Through(_client.Outer, _backend.Outer); // the client trickles: the relay is not silent
            Assert.False(await EndsSoon(relay));
        }
        _clock.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1)); // the write has waited 5 min
        Assert.Equal(RelayEnd.Idle, await relay.WaitAsync(Guard));
        _backend.Outer.Close();
        await flood.WaitAsync(Guard);
    }

    /// <summary>
    /// Passing the backend's end on to the client (a terminating route's close_notify) can wait for ever on a client
    /// that reads nothing: the idle timeout still ends the relay.
    /// </summary>
    [Fact]
    public async Task A_half_close_that_never_completes_is_ended_by_the_idle_timeout()
    {
        var never = new TaskCompletionSource();
        var relay = Relay.RunAsync(
            new NetworkStream(_client.Inner), new NetworkStream(_backend.Inner),
            () => new ValueTask(never.Task),
            () => { _backend.Inner.Shutdown(SocketShutdown.Send); return ValueTask.CompletedTask; },
            _metrics, CancellationToken.None, TimeSpan.FromMinutes(5), _clock);
        Through(_client.Outer, _backend.Outer);
        _backend.Outer.Shutdown(SocketShutdown.Send); // the backend is done: its end goes to the client, and sticks
        Assert.False(await EndsSoon(relay));

        _clock.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        Assert.Equal(RelayEnd.Idle, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task With_no_timeout_a_silent_relay_stays_until_both_sides_close()
    {
        var relay = Start(TimeSpan.Zero);
        Through(_client.Outer, _backend.Outer);
        _clock.Advance(TimeSpan.FromDays(2));
        Assert.False(await EndsSoon(relay));

        _client.Outer.Shutdown(SocketShutdown.Send);
        _backend.Outer.Shutdown(SocketShutdown.Send);
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_relay_that_completes_before_the_timeout_ends_as_completed()
    {
        var relay = Start(TimeSpan.FromMinutes(5));
        Through(_client.Outer, _backend.Outer);
        _client.Outer.Shutdown(SocketShutdown.Send);
        _backend.Outer.Shutdown(SocketShutdown.Send);
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
        _clock.Advance(TimeSpan.FromMinutes(10)); // the watcher is gone: nothing fires afterwards
    }

    [Fact]
    public async Task A_direction_that_waited_long_holds_no_buffer_while_it_waits_and_takes_one_when_data_comes()
    {
        var relay = Start(TimeSpan.Zero);
        Assert.Equal(2, _metrics.RelayBuffersHeld); // both directions wait for their first bytes, each with its buffer

        _clock.Advance(Relay.IdleAfter + TimeSpan.FromSeconds(1)); // while both wait (a byte sent first would race this)
        Through(_client.Outer, _backend.Outer); // upwards, a wait of IdleAfter and more ended
        Assert.True(Eventually.Until(Guard, () => _metrics.RelayBuffersHeld == 1), $"held {_metrics.RelayBuffersHeld}");
        Through(_backend.Outer, _client.Outer); // and downwards
        Assert.True(Eventually.Until(Guard, () => _metrics.RelayBuffersHeld == 0), $"held {_metrics.RelayBuffersHeld}");

        // Data after a short wait: the direction is busy again and keeps its buffer.
        Through(_client.Outer, _backend.Outer);
        Assert.True(Eventually.Until(Guard, () => _metrics.RelayBuffersHeld == 1), $"held {_metrics.RelayBuffersHeld}");
        Through(_client.Outer, _backend.Outer); // carried whole, in order, as before
        _client.Outer.Shutdown(SocketShutdown.Send);
        _backend.Outer.Shutdown(SocketShutdown.Send);
        Assert.Equal(RelayEnd.Completed, await relay.WaitAsync(Guard));
        Assert.Equal(0, _metrics.RelayBuffersHeld);
    }


    public void Dispose()
    {
        foreach (var s in new[] { _client.Outer, _client.Inner, _backend.Outer, _backend.Inner }) s.Dispose();
        _metrics.Dispose();
    }
}
