using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Numerics;
using System.Security.Authentication;
using System.Text;
using Isotun.Protocol.Addressing;

namespace Isotun.Lab;

/// <summary>What a flood does: from which addresses, how many connections each, of which kinds, for how long.</summary>
public sealed record FloodPlan(IPEndPoint Target, IReadOnlyList<IPAddress> Sources, int PerSource, FloodMix Mix, TimeSpan Hold)
{
    /// <summary>Connections being opened (TCP, and TLS for <see cref="FloodKind.Head"/>) at once.</summary>
    public int Parallel { get; init; } = 256;

    /// <summary>How often a progress line is said.</summary>
    public TimeSpan Report { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// A connection flood against a TLS listener, for benchmarks: <see cref="FloodPlan.PerSource"/> connections from each
/// source address (every socket bound to its source before it connects), each held open doing its
/// <see cref="FloodKind"/> until the server closes it, and then opened again (slowloris style) until the hold ends. An
/// end within <see cref="RefusedWithin"/> of the connect, before the server sent a byte, counts as a refusal (the
/// server resets a connection over its caps at accept); a later one as a close by the server (its timeouts).
/// </summary>
public static class FloodClient
{
    /// <summary>Most source addresses a plan may list.</summary>
    public const int MaxSources = 65536;

    public static readonly TimeSpan RefusedWithin = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Drip = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan AfterClose = TimeSpan.FromMilliseconds(100), AfterRefusal = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The first <paramref name="count"/> host addresses of <paramref name="network"/> (a CIDR), from its network address
    /// plus one; false with the reason when it is no CIDR, or too small for them.
    /// </summary>
    public static bool TryListSources(string network, int count, out IReadOnlyList<IPAddress> sources, out string? error)
    {
        sources = [];
        error = null;
        if (!IpNetwork.TryParse(network, out var net)) { error = $"'{network}' is not a network such as 198.18.128.0/24"; return false; }
        if (count is < 1 or > MaxSources) { error = $"the count must be 1 to {MaxSources}"; return false; }
        int bits = (net.Network.AddressFamily == AddressFamily.InterNetwork ? 32 : 128) - net.PrefixLength;
        // Host addresses after the network address (and, in IPv4, before the broadcast address).
        var hosts = (BigInteger.One << bits) - (net.Network.AddressFamily == AddressFamily.InterNetwork ? 2 : 1);
        if (hosts < count) { error = $"{net} has {BigInteger.Max(hosts, 0)} host addresses, not {count}"; return false; }
        var bytes = net.Network.GetAddressBytes();
        var first = new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
        var list = new IPAddress[count];
        var buffer = new byte[bytes.Length];
        for (int i = 0; i < count; i++)
        {
            var value = first + 1 + i;
            buffer.AsSpan().Clear();
            value.TryWriteBytes(buffer.AsSpan(buffer.Length - value.GetByteCount(isUnsigned: true)), out _, isUnsigned: true, isBigEndian: true);
            list[i] = new IPAddress(buffer);
        }
        sources = list;
        return true;
    }

    public static async Task<int> RunAsync(FloodPlan plan, Action<string> say, CancellationToken ct)
    {
        var counts = new Counts();
        int slots = plan.Sources.Count * plan.PerSource;
        var gate = new SemaphoreSlim(plan.Parallel);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(plan.Hold);
        var clock = Stopwatch.StartNew();
        var tasks = new Task[slots];
        for (int s = 0; s < plan.Sources.Count; s++)
            for (int c = 0; c < plan.PerSource; c++)
            {
                int slot = s * plan.PerSource + c;
                tasks[slot] = SlotAsync(plan, plan.Sources[s], plan.Mix.KindOf(slot), gate, counts, stop.Token);
            }
        var all = Task.WhenAll(tasks);
        bool up = false;
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(up ? plan.Report : TimeSpan.FromMilliseconds(200), CancellationToken.None)).ConfigureAwait(false);
            if (!up && Volatile.Read(ref counts.FirstTries) == slots)
            {
                up = true;
                say(counts.Line($"flood: up after {clock.Elapsed.TotalSeconds:0.0} s, every slot tried once:"));
            }
            else if (up && !all.IsCompleted)
            {
                say(counts.Line($"flood t={clock.Elapsed.TotalSeconds:0}s:"));
            }
        }
        await all.ConfigureAwait(false);
        say(counts.Line($"flood: {plan.Sources.Count} sources x {plan.PerSource} = {slots} slots ({plan.Mix}) for {clock.Elapsed.TotalSeconds:0} s:"));
        return Interlocked.Read(ref counts.Opened) > 0 ? 0 : 1;
    }

    /// <summary>One slot: connect from <paramref name="source"/>, hold, and again when the server ends it, until the hold ends.</summary>
    private static async Task SlotAsync(FloodPlan plan, IPAddress source, FloodKind kind, SemaphoreSlim gate, Counts counts, CancellationToken ct)
    {
        bool first = true;
        await Task.Yield();
        while (!ct.IsCancellationRequested)
        {
            TimeSpan pause;
            try
            {
                pause = await OnceAsync(plan, source, kind, gate, counts, first, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            first = false;
            try
            {
                await Task.Delay(pause, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// One connection, from connect to its end; returns how long the slot waits before the next. The slot's
    /// <paramref name="first"/> connection counts as tried once it is open (or failed to open).
    /// </summary>
    private static async Task<TimeSpan> OnceAsync(FloodPlan plan, IPAddress source, FloodKind kind, SemaphoreSlim gate, Counts counts, bool first, CancellationToken ct)
    {
        using var socket = new Socket(source.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        SslStream? tls = null;
        long connected;
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var opening = CancellationTokenSource.CreateLinkedTokenSource(ct);
            opening.CancelAfter(ConnectTimeout);
            try
            {
                socket.Bind(new IPEndPoint(source, 0));
                await socket.ConnectAsync(plan.Target, opening.Token).ConfigureAwait(false);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Accepted and reset before this process saw its connect complete: a refusal at accept.
                Interlocked.Increment(ref counts.Opened);
                Interlocked.Increment(ref counts.Refused);
                return AfterRefusal;
            }
            catch (Exception e) when (e is SocketException || e is OperationCanceledException && !ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref counts.ConnectFailed);
                counts.LastError = e is SocketException se ? se.SocketErrorCode.ToString() : "connect timed out";
                return AfterRefusal;
            }
            connected = Stopwatch.GetTimestamp();
            Interlocked.Increment(ref counts.Opened);
            if (kind == FloodKind.Head)
            {
                tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
                try
                {
                    await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                    {
                        TargetHost = plan.Target.Address.ToString(),
                        EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                        RemoteCertificateValidationCallback = static (_, _, _, _) => true, // a flood trusts anything
                    }, opening.Token).ConfigureAwait(false);
                    Interlocked.Increment(ref counts.Handshakes);
                }
                catch (Exception e) when (e is IOException or AuthenticationException || e is OperationCanceledException && !ct.IsCancellationRequested)
                {
                    await tls.DisposeAsync().ConfigureAwait(false);
                    return Ended(counts, connected, answered: false);
                }
            }
        }
        finally
        {
            gate.Release();
            if (first) Interlocked.Increment(ref counts.FirstTries);
        }

        Interlocked.Increment(ref counts.Held);
        counts.NoteHeld();
        try
        {
            bool answered = kind switch
            {
                FloodKind.Idle => await IdleAsync(socket, ct).ConfigureAwait(false),
                FloodKind.Hello => await HelloAsync(socket, ct).ConfigureAwait(false),
                _ => await HeadAsync(tls!, plan.Target.Address, ct).ConfigureAwait(false),
            };
            return Ended(counts, connected, answered);
        }
        finally
        {
            Interlocked.Decrement(ref counts.Held);
            if (tls is not null) await tls.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Counts the server's end of a connection: a refusal when it came at once and without a byte.</summary>
    private static TimeSpan Ended(Counts counts, long connected, bool answered)
    {
        if (!answered && Stopwatch.GetElapsedTime(connected) < RefusedWithin)
        {
            Interlocked.Increment(ref counts.Refused);
            return AfterRefusal;
        }
        Interlocked.Increment(ref counts.ClosedByServer);
        return AfterClose;
    }

    /// <summary>Sends nothing; waits for the server's end. True when the server sent a byte first.</summary>
    private static async Task<bool> IdleAsync(Socket socket, CancellationToken ct)
    {
        var buffer = new byte[1];
        try
        {
            return await socket.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false) > 0;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// The first bytes of a TLS 1.2+ ClientHello (record and handshake headers that announce 512 bytes, the version, a
    /// few bytes of the random), then one more byte of the random every <see cref="Drip"/>.
    /// </summary>
    private static async Task<bool> HelloAsync(Socket socket, CancellationToken ct)
    {
        var hello = new byte[5 + 4 + 2 + 32];
        hello[0] = 0x16; // handshake record, TLS 1.0 on the record layer as clients send it
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(1), 0x0301);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(3), 512);
        hello[5] = 0x01; // ClientHello
        hello[7] = (512 - 4) >> 8;
        hello[8] = (512 - 4) & 0xFF;
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(9), 0x0303);
        Random.Shared.NextBytes(hello.AsSpan(11));
        return await DripAsync(socket.ReceiveAsync(new byte[1], SocketFlags.None, ct).AsTask(), hello, 16,
            (chunk, token) => socket.SendAsync(chunk, SocketFlags.None, token).AsTask(), ct).ConfigureAwait(false);
    }

    /// <summary>The start of a login request's head, then one more byte of a header every <see cref="Drip"/>; never its end.</summary>
    private static async Task<bool> HeadAsync(SslStream tls, IPAddress host, CancellationToken ct)
    {
        var head = Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nHost: {host}\r\nX-Aggregate-Auth: 1\r\nX-Pad: {new string('a', 64)}");
        return await DripAsync(tls.ReadAsync(new byte[1], ct).AsTask(), head, head.Length - 64,
            async (chunk, token) => { await tls.WriteAsync(chunk, token).ConfigureAwait(false); await tls.FlushAsync(token).ConfigureAwait(false); }, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends the first <paramref name="start"/> bytes of <paramref name="bytes"/> and then one more every
    /// <see cref="Drip"/> (all but the last), until <paramref name="receive"/> ends: true when the server sent a byte.
    /// </summary>
    private static async Task<bool> DripAsync(Task<int> receive, byte[] bytes, int start, Func<ReadOnlyMemory<byte>, CancellationToken, Task> send, CancellationToken ct)
    {
        try
        {
            await send(bytes.AsMemory(0, start), ct).ConfigureAwait(false);
            for (int sent = start; ; sent++)
            {
                if (await Task.WhenAny(receive, Task.Delay(Drip, ct)).ConfigureAwait(false) == receive) break;
                ct.ThrowIfCancellationRequested();
                if (sent < bytes.Length - 1) await send(bytes.AsMemory(sent, 1), ct).ConfigureAwait(false);
            }
            return await receive.ConfigureAwait(false) > 0;
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            _ = receive.ContinueWith(static t => t.Exception, TaskScheduler.Default); // observed: the socket goes with the slot
            return false;
        }
    }

    private sealed class Counts
    {
        public long Opened, Refused, ClosedByServer, ConnectFailed, Handshakes;
        public int Held, MaxHeld, FirstTries;
        public string? LastError;

        public void NoteHeld()
        {
            int held = Volatile.Read(ref Held), max;
            while (held > (max = Volatile.Read(ref MaxHeld)) && Interlocked.CompareExchange(ref MaxHeld, held, max) != max) { }
        }

        public string Line(string head) => string.Create(CultureInfo.InvariantCulture,
            $"{head} held={Volatile.Read(ref Held)} max-held={Volatile.Read(ref MaxHeld)} opened={Interlocked.Read(ref Opened)} refused={Interlocked.Read(ref Refused)} closed-by-server={Interlocked.Read(ref ClosedByServer)} connect-failed={Interlocked.Read(ref ConnectFailed)}{(LastError is { } e ? $" ({e})" : "")} tls-handshakes={Interlocked.Read(ref Handshakes)}");
    }
}
