using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// The record layer on OpenSSL's connection after an SslStream handshake, over loopback TCP with this runtime's
/// SslStream and the system's libssl 3, as the server and the client run it: data both ways against a peer that keeps
/// SslStream and against one that takes over too, what the peer sent right after the handshake, zero-byte waits,
/// close_notify, a forged record, key updates from OpenSSL's own client, and TLS 1.2 left to SslStream.
/// </summary>
public sealed class TlsRecordStreamTests
{
    /// <summary>One end as the server and the client build it: socket, record reads during the handshake, SslStream.</summary>
    private sealed class End : IAsyncDisposable
    {
        public End(Socket socket, Func<Stream, Stream>? wrap = null, bool recordReads = true)
        {
            Socket = socket;
            var network = new SocketStream(socket);
            Under = new WriteCoalescingStream(wrap?.Invoke(network) ?? network, recordReads: recordReads);
            Tls = new SslStream(Under, leaveInnerStreamOpen: false, (_, _, _, _) => true);
        }

        public Socket Socket { get; }
        public WriteCoalescingStream Under { get; }
        public SslStream Tls { get; }
        public TlsRecordStream? Records { get; private set; }
        public Stream Data => (Stream?)Records ?? Tls;

        public TlsRecordStream? Take() => Records = TlsRecordStream.TryTake(Tls, Under);

        public async ValueTask DisposeAsync()
        {
            if (Records is not null) await Records.DisposeAsync();
            await Tls.DisposeAsync();
        }
    }

    private static async Task<(End Server, End Client)> PairAsync(SslProtocols protocol, Func<End, Task>? afterClientHandshake = null, Func<Stream, Stream>? wrapServer = null, bool serverRecordReads = true)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var dialer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await dialer.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var server = new End(await listener.AcceptSocketAsync(), wrapServer, serverRecordReads);
        var client = new End(dialer);
        using var cert = NativeTlsTests.Certificate();
        async Task ClientAsync()
        {
            await client.Tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "records", EnabledSslProtocols = protocol });
            if (afterClientHandshake is not null) await afterClientHandshake(client);
        }
        await Task.WhenAll(
            server.Tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = cert, EnabledSslProtocols = protocol }),
            ClientAsync()).WaitAsync(TimeSpan.FromSeconds(30));
        return (server, client);
    }

    private static async Task<byte[]> ReadExactlyAsync(Stream stream, int size)
    {
        var buffer = new byte[size];
        await stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        return buffer;
    }

    [Fact]
    public async Task Data_flows_both_ways_against_a_peer_that_keeps_SslStream()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            Assert.NotNull(server.Take());
            client.Under.EndRecordReads(); // the client keeps SslStream
            foreach (int size in new[] { 1, 1400, 16384, 16385, 100_000, 1 << 20 })
            {
                var data = RandomNumberGenerator.GetBytes(size);
                var sent = Task.Run(async () =>
                {
                    await server.Data.WriteAsync(data);
                    await server.Data.FlushAsync();
                });
                Assert.Equal(data, await ReadExactlyAsync(client.Tls, size));
                await sent;
                await client.Tls.WriteAsync(data);
                await client.Tls.FlushAsync(); // the stream under it gathers records until a flush
                Assert.Equal(data, await ReadExactlyAsync(server.Data, size));
            }
        }
    }

    [Fact]
    public async Task Both_ends_taken_over_carry_a_megabyte_each_way_at_once_in_small_and_large_writes()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            Assert.NotNull(server.Take());
            Assert.NotNull(client.Take());
            var up = RandomNumberGenerator.GetBytes(1 << 20);
            var down = RandomNumberGenerator.GetBytes(1 << 20);

            static async Task SendAsync(Stream s, byte[] data)
            {
                // Writes of every size, a flush after some: records gather between flushes.
                int at = 0, step = 1;
                while (at < data.Length)
                {
                    int n = Math.Min(step, data.Length - at);
                    await s.WriteAsync(data.AsMemory(at, n));
                    if (step % 3 == 0) await s.FlushAsync();
                    at += n;
                    step = step * 7 % 70_001 + 1;
                }
                await s.FlushAsync();
            }

            var sends = Task.WhenAll(Task.Run(() => SendAsync(client.Data, up)), Task.Run(() => SendAsync(server.Data, down)));
            var atServer = Task.Run(() => ReadExactlyAsync(server.Data, up.Length));
            var atClient = Task.Run(() => ReadExactlyAsync(client.Data, down.Length));
            await sends.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(up, await atServer);
            Assert.Equal(down, await atClient);
        }
    }

    /// <summary>
    /// A peer's first request right behind its handshake is not lost to SslStream's buffer: the server reads slowly, so
    /// the client's Finished and its request wait in the socket together, and SslStream, reading the handshake record by
    /// record, takes only the Finished. Without record reads SslStream takes both: the take-over then sees that
    /// SslStream holds bytes and is refused, and SslStream carries the connection (the control case: the setup does put
    /// both in one read, and nothing is lost either way).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task What_the_peer_sends_right_after_the_handshake_is_read(bool recordReads)
    {
        var request = Encoding.ASCII.GetBytes("POST / HTTP/1.1\r\nHost: records\r\n\r\n");
        var (server, client) = await PairAsync(SslProtocols.Tls13, async c =>
        {
            await c.Tls.WriteAsync(request);
            await c.Tls.FlushAsync();
        }, network => new SlowReads(network), recordReads);
        await using (server)
        await using (client)
        {
            var records = server.Take();
            Assert.Equal(recordReads, records is not null);
            Assert.Equal(request, await ReadExactlyAsync(server.Data, request.Length));
        }
    }

    /// <summary>Each read waits 100 ms first: whatever the peer sends meanwhile is there for one read.</summary>
    private sealed class SlowReads(Stream inner) : DuplexTestStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            await Task.Delay(100, ct);
            return await inner.ReadAsync(buffer, ct);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default) => inner.WriteAsync(data, ct);
    }

    /// <summary>
    /// SslStream keeps its handshake's read buffer (8 KiB) until a read of its own, which never comes once the records
    /// are taken over: it is given back at the take-over, or every idle session would hold it for nothing.
    /// </summary>
    [Fact]
    public async Task SslStreams_read_buffer_goes_back_to_the_pool_at_the_take_over()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            Assert.NotEmpty(ArraysIn(server.Tls));
            Assert.NotNull(server.Take());
            Assert.All(ArraysIn(server.Tls), a => Assert.Empty(a));
        }
    }

    /// <summary>The byte arrays inside SslStream's read buffer (a struct of structs), found by reflection.</summary>
    private static List<byte[]> ArraysIn(SslStream tls)
    {
        const System.Reflection.BindingFlags Fields = System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public;
        var found = new List<byte[]>();
        void Walk(object? value, int depth)
        {
            if (value is byte[] bytes) found.Add(bytes);
            else if (value is not null && value.GetType().IsValueType && depth < 3)
                foreach (var f in value.GetType().GetFields(Fields)) Walk(f.GetValue(value), depth + 1);
        }
        Walk(typeof(SslStream).GetField("_buffer", Fields)!.GetValue(tls), 0);
        return found;
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_holds_none_of_it()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            Assert.NotNull(server.Take());
            client.Under.EndRecordReads();
            var wait = server.Data.ReadAsync(Memory<byte>.Empty).AsTask();
            await Task.Delay(100);
            Assert.False(wait.IsCompleted);
            await client.Tls.WriteAsync("ping"u8.ToArray());
            await client.Tls.FlushAsync();
            Assert.Equal(0, await wait.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("ping"u8.ToArray(), await ReadExactlyAsync(server.Data, 4));
        }
    }

    [Fact]
    public async Task A_close_notify_reads_as_the_end_of_the_stream()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            var records = server.Take()!;
            client.Under.EndRecordReads();
            await records.WriteAsync("bye"u8.ToArray());
            await records.ShutdownAsync();
            Assert.Equal("bye"u8.ToArray(), await ReadExactlyAsync(client.Tls, 3));
            Assert.Equal(0, await client.Tls.ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

            await client.Tls.ShutdownAsync();
            await client.Tls.FlushAsync();
            Assert.Equal(0, await records.ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task A_forged_record_fails_the_read_with_OpenSSLs_reason()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls13);
        await using (server)
        await using (client)
        {
            var records = server.Take()!;
            // An application-data record of 32 bytes that no key sealed, straight onto the socket.
            var forged = new byte[5 + 32];
            forged[0] = 23;
            forged[1] = 3;
            forged[2] = 3;
            forged[4] = 32;
            RandomNumberGenerator.Fill(forged.AsSpan(5));
            await client.Socket.SendAsync(forged);
            var e = await Assert.ThrowsAsync<IOException>(() => records.ReadAsync(new byte[64]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.StartsWith("TLS read failed: ", e.Message);
            Assert.Contains("decrypt", e.Message, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task TLS_12_stays_with_SslStream()
    {
        var (server, client) = await PairAsync(SslProtocols.Tls12);
        await using (server)
        await using (client)
        {
            Assert.Null(server.Take());
            client.Under.EndRecordReads();
            // Reads are no longer cut at records, and SslStream carries the data.
            var data = RandomNumberGenerator.GetBytes(50_000);
            await client.Tls.WriteAsync(data);
            await client.Tls.FlushAsync();
            Assert.Equal(data, await ReadExactlyAsync(server.Data, data.Length));
        }
    }

    /// <summary>
    /// OpenSSL's own client (s_client) sends data right after its handshake, then key updates, one of them asking for
    /// ours: the server reads on under the peer's new keys, and its answer (its own key update, then data) is read by
    /// s_client, which would fail on a record under the wrong key.
    /// </summary>
    [SkippableFact]
    public async Task Key_updates_from_OpenSSLs_client_are_followed_both_ways()
    {
        var skip = SClient.SkipReason("key updates on the record layer");
        Skip.If(skip is not null, skip);
        using var cert = NativeTlsTests.Certificate();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var client = SClient.Start("-connect", $"127.0.0.1:{port}", "-tls1_3", "-servername", "records", "-msg");
        await using var server = new End(await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        await server.Tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = cert, EnabledSslProtocols = SslProtocols.Tls13 }).WaitAsync(TimeSpan.FromSeconds(30));
        var records = server.Take()!;
        Assert.NotNull(records);

        async Task<string> LineAsync()
        {
            var line = new List<byte>();
            var one = new byte[1];
            while (true)
            {
                Assert.Equal(1, await records.ReadAsync(one).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
                if (one[0] == '\n') return Encoding.ASCII.GetString(line.ToArray());
                line.Add(one[0]);
            }
        }

        await client.SendLineAsync("first");
        Assert.Equal("first", await LineAsync());
        await WriteLineAsync(records, "reply-1");
        await client.SendLineAsync("k"); // a key update, ours not asked for
        await Task.Delay(300); // s_client drops the rest of what it reads with a command letter: the next line apart
        await client.SendLineAsync("second");
        Assert.Equal("second", await LineAsync());
        await client.SendLineAsync("K"); // a key update asking for ours
        await Task.Delay(300);
        await client.SendLineAsync("third");
        Assert.Equal("third", await LineAsync());
        await WriteLineAsync(records, "reply-2");
        await client.SendLineAsync("fourth");
        Assert.Equal("fourth", await LineAsync());
        await WriteLineAsync(records, "reply-3");
        string output = await client.EndAsync(TimeSpan.FromMilliseconds(500));
        Assert.Contains("reply-1", output);
        Assert.Contains("reply-2", output);
        Assert.Contains("reply-3", output);
        // The server's own key update, asked for by "K" and sent before reply-2 (s_client -msg shows what it receives).
        var received = output.Split('\n').Where(l => l.StartsWith("<<<") && l.Contains("KeyUpdate")).ToList();
        Assert.Single(received);
    }

    private static async Task WriteLineAsync(Stream s, string line)
    {
        await s.WriteAsync(Encoding.ASCII.GetBytes(line + "\n"));
        await s.FlushAsync();
    }
}
