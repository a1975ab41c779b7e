using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Isotun.Transport.Listening;
using Isotun.UnitTests.Gateway;

namespace Isotun.UnitTests.Core.Transport.Listening;

/// <summary>The one accept loop, on a real loopback listener: admission, refusals, accept failures, handler faults, drain.</summary>
public sealed class ConnectionListenerTests
{
    private sealed class Events : IListenerEvents
    {
        public readonly ConcurrentQueue<AdmissionRefusal> Refusals = new();
        public readonly ConcurrentQueue<(AcceptFailure Error, TimeSpan Backoff)> AcceptFailures = new();
        public readonly ConcurrentQueue<long> HandlerFailures = new();
        public void Refused(IPEndPoint remote, AdmissionRefusal reason) => Refusals.Enqueue(reason);
        public void AcceptFailed(AcceptFailure error, TimeSpan backoff) => AcceptFailures.Enqueue((error, backoff));
        public void HandlerFailed(long id, Exception error) => HandlerFailures.Enqueue(id);
    }

    private static Socket Listen()
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        s.Listen(64);
        return s;
    }

    private static Socket Connect(Socket listening)
    {
        var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        c.Connect(listening.LocalEndPoint!);
        return c;
    }

    /// <summary>True when the server side closed (FIN or RST) within the time allowed.</summary>
    private static bool ClosedByServer(Socket client)
    {
        client.ReceiveTimeout = 5000;
        try
        {
            return client.Receive(new byte[1]) == 0;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode == SocketError.ConnectionReset;
        }
    }

    [Fact]
    public async Task Connections_over_the_per_source_cap_are_reset_and_counted_while_the_admitted_ones_are_served()
    {
        using var listening = Listen();
        var caps = new ConcurrencyCaps(maxConnections: 100, perSource: 2);
        var events = new Events();
        long id = 0;
        using var stop = new CancellationTokenSource();
        var release = new TaskCompletionSource();
        var served = new ConcurrentQueue<long>();
        var run = new ConnectionListener([listening], caps, events, () => Interlocked.Increment(ref id))
            .RunAsync(async (c, ct) => { served.Enqueue(c.Id); await release.Task.WaitAsync(ct); }, () => TimeSpan.FromSeconds(5), stop.Token);

        using var a = Connect(listening);
        using var b = Connect(listening);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => served.Count == 2));
        using var third = Connect(listening);
        Assert.True(ClosedByServer(third));
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => events.Refusals.Count == 1));
        Assert.Equal(AdmissionRefusal.SourceCap, events.Refusals.Single());
        Assert.Equal(2, caps.Active);

        // One ends: its place is free again.
        release.SetResult();
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => caps.Active == 0));
        using var fourth = Connect(listening);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => served.Count == 3));
        stop.Cancel();
        await run;
        Assert.Equal([1L, 2L, 3L], served.Order());
    }

    /// <summary>
    /// The drain is read when the listeners close, not when they open: a reload that shortens drain-time holds for the
    /// stop that follows. A handler that does not end on stopping is left once the drain is over.
    /// </summary>
    [Fact]
    public async Task The_drain_is_the_one_configured_when_the_stop_comes()
    {
        using var listening = Listen();
        using var stop = new CancellationTokenSource();
        var served = new TaskCompletionSource();
        var never = new TaskCompletionSource();
        var drain = TimeSpan.FromMinutes(10);
        var run = new ConnectionListener([listening], null, new Events(), () => 1)
            .RunAsync(async (_, _) => { served.TrySetResult(); await never.Task; }, () => drain, stop.Token);
        using var client = Connect(listening);
        await served.Task.WaitAsync(TimeSpan.FromSeconds(10));

        drain = TimeSpan.FromMilliseconds(100); // a reload
        stop.Cancel();
        // Ten minutes if the drain were read at the start; well under a minute on the slowest machine otherwise.
        await run.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.False(never.Task.IsCompleted);
    }

    [Fact]
    public async Task Resource_exhaustion_at_accept_backs_off_and_the_loop_goes_on()
    {
        using var listening = Listen();
        var events = new Events();
        int failures = 0;
        using var stop = new CancellationTokenSource();
        var served = new TaskCompletionSource();
        var listener = new ConnectionListener([listening], null, events, () => 1)
        {
            Accept = (s, ct) => Interlocked.Increment(ref failures) <= 3
                ? ValueTask.FromException<Socket>(new SocketException(24)) // EMFILE
                : s.AcceptAsync(ct),
        };
        var run = listener.RunAsync((_, _) => { served.TrySetResult(); return Task.CompletedTask; }, () => TimeSpan.FromSeconds(5), stop.Token);
        using var client = Connect(listening);
        await served.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(3, events.AcceptFailures.Count);
        Assert.All(events.AcceptFailures, f => Assert.Equal(AcceptFailure.Emfile, f.Error));
        // 10, 20, 40 ms: doubling, so a lasting shortage costs little CPU.
        Assert.Equal([10.0, 20.0, 40.0], events.AcceptFailures.Select(f => f.Backoff.TotalMilliseconds));
        stop.Cancel();
        await run;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_handler_that_throws_ends_only_its_connection_and_is_reported(bool startOnAcceptThread)
    {
        using var listening = Listen();
        var events = new Events();
        long id = 0;
        using var stop = new CancellationTokenSource();
        var served = new ConcurrentQueue<long>();
        var run = new ConnectionListener([listening], new ConcurrencyCaps(10, 10), events, () => Interlocked.Increment(ref id))
            .RunAsync((c, _) =>
            {
                served.Enqueue(c.Id);
                if (c.Id == 1) throw new InvalidOperationException("a bug");
                if (c.Id == 2) throw new IOException("the peer went away");
                return Task.CompletedTask;
            }, () => TimeSpan.FromSeconds(5), stop.Token, startOnAcceptThread);
        for (int i = 0; i < 3; i++)
        {
            using var c = Connect(listening);
            Assert.True(ClosedByServer(c));
        }
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => served.Count == 3));
        Assert.Equal([1L], events.HandlerFailures); // the I/O error is the peer's, not a bug
        stop.Cancel();
        await run;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Stop_closes_the_listener_and_waits_for_running_handlers_up_to_the_drain(bool startOnAcceptThread)
    {
        using var listening = Listen();
        var endpoint = listening.LocalEndPoint!;
        using var stop = new CancellationTokenSource();
        var started = new TaskCompletionSource();
        var finished = false;
        var run = new ConnectionListener([listening], null, new Events(), () => 1)
            .RunAsync(async (_, ct) =>
            {
                started.SetResult();
                try { await Task.Delay(Timeout.Infinite, ct); }
                finally { await Task.Delay(200, CancellationToken.None); finished = true; }
            }, () => TimeSpan.FromSeconds(10), stop.Token, startOnAcceptThread);
        using var c = Connect(listening);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        stop.Cancel();
        await run;
        Assert.True(finished);
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Assert.ThrowsAny<SocketException>(() => late.Connect(endpoint));
    }

    [Fact]
    public async Task Handlers_started_on_the_accepting_thread_that_wait_do_not_hold_up_the_next_accept()
    {
        using var listening = Listen();
        long id = 0;
        using var stop = new CancellationTokenSource();
        var never = new TaskCompletionSource();
        var served = new ConcurrentQueue<long>();
        var run = new ConnectionListener([listening], null, new Events(), () => Interlocked.Increment(ref id))
            .RunAsync(async (c, ct) =>
            {
                served.Enqueue(c.Id);
                await never.Task.WaitAsync(ct); // each one waits (as for its first read) until the stop
            }, () => TimeSpan.FromSeconds(5), stop.Token, startOnAcceptThread: true);
        var clients = Enumerable.Range(0, 5).Select(_ => Connect(listening)).ToList();
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => served.Count == 5));
        stop.Cancel();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        foreach (var c in clients) c.Dispose();
    }

    [Fact]
    public async Task A_listening_socket_per_core_shares_one_port_and_the_kernel_spreads_connections_over_them()
    {
        var sockets = ListeningSockets.Open(new IPEndPoint(IPAddress.Loopback, 0), 64, 2);
        var port = ((IPEndPoint)sockets[0].LocalEndPoint!).Port;
        Assert.Equal(port, ((IPEndPoint)sockets[1].LocalEndPoint!).Port);
        long id = 0;
        using var stop = new CancellationTokenSource();
        var served = new ConcurrentQueue<long>();
        var acceptedBy = new ConcurrentDictionary<Socket, int>();
        var listener = new ConnectionListener(sockets, null, new Events(), () => Interlocked.Increment(ref id))
        {
            Accept = async (s, ct) =>
            {
                var accepted = await s.AcceptAsync(ct);
                acceptedBy.AddOrUpdate(s, 1, (_, n) => n + 1);
                return accepted;
            },
        };
        var run = listener.RunAsync((c, _) => { served.Enqueue(c.Id); return Task.CompletedTask; }, () => TimeSpan.FromSeconds(5), stop.Token, startOnAcceptThread: true);

        for (int i = 0; i < 40; i++)
        {
            using var c = Connect(sockets[0]);
            Assert.True(ClosedByServer(c));
        }
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => served.Count == 40));
        // By the hash of each connection's addresses and ports: both sockets, all but surely, over 40 source ports.
        Assert.Equal(2, acceptedBy.Count);
        Assert.Equal(40, acceptedBy.Values.Sum());

        stop.Cancel();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        // Both closed on stop: the port is free for the next server.
        foreach (var s in ListeningSockets.Open(new IPEndPoint(IPAddress.Loopback, port), 64, 2)) s.Dispose();
    }

    [Fact]
    public void A_port_already_listened_on_is_refused_even_by_a_second_set_of_shared_sockets()
    {
        var first = ListeningSockets.Open(new IPEndPoint(IPAddress.Loopback, 0), 64, 2);
        try
        {
            var at = (IPEndPoint)first[0].LocalEndPoint!;
            var e = Assert.Throws<SocketException>(() => ListeningSockets.Open(at, 64, 2));
            Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
            using var plain = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            plain.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            plain.Listen(1);
            e = Assert.Throws<SocketException>(() => ListeningSockets.Open((IPEndPoint)plain.LocalEndPoint!, 64, 1));
            Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
            // What an operator reads names the listener and the address.
            var named = Assert.Throws<IOException>(() => ListeningSockets.Open("gateway", at, 64));
            Assert.StartsWith($"the gateway cannot listen on {at}: ", named.Message);
        }
        finally
        {
            foreach (var s in first) s.Dispose();
        }
    }

    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::")]
    public void Sources_are_counted_by_IPv4_address_and_IPv6_slash_64(string address, string key) =>
        Assert.Equal(IPAddress.Parse(key), SourceKey.Of(IPAddress.Parse(address)));

    [Fact]
    public void Caps_count_an_IPv6_slash_64_as_one_source_and_a_global_cap_over_all()
    {
        var caps = new ConcurrencyCaps(maxConnections: 3, perSource: 2);
        Assert.Null(caps.Admit(IPAddress.Parse("2001:db8::1")));
        Assert.Null(caps.Admit(IPAddress.Parse("2001:db8::2")));
        Assert.Equal(AdmissionRefusal.SourceCap, caps.Admit(IPAddress.Parse("2001:db8::3")));
        Assert.Null(caps.Admit(IPAddress.Parse("2001:db8:0:1::1"))); // another /64
        Assert.Equal(AdmissionRefusal.GlobalCap, caps.Admit(IPAddress.Parse("198.18.0.9")));
        Assert.Equal(3, caps.Active);
        caps.Release(IPAddress.Parse("2001:db8::2"));
        Assert.Null(caps.Admit(IPAddress.Parse("198.18.0.9")));
        // A lower cap on reload refuses new connections and leaves open ones alone.
        caps.Update(2, 1);
        Assert.Equal(AdmissionRefusal.GlobalCap, caps.Admit(IPAddress.Parse("198.18.0.10")));
        Assert.Equal(3, caps.Active);
    }
}
