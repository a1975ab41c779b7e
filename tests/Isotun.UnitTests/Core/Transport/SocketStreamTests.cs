using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isotun.Transport;

namespace Isotun.UnitTests.Core.Transport;

/// <summary>
/// A peer's reset (RST) ends a <see cref="SocketStream"/> as a close would: reads return 0 and writes are dropped,
/// over real TCP on loopback, without an exception where the reset is already there; a TLS server over it sees a
/// client that resets as one that left. Other failures are IOExceptions, as NetworkStream's.
/// </summary>
public sealed class SocketStreamTests
{
    // First-chance exceptions raised in a test's own flow (the marker flows with its awaits), not in tests beside it.
    private static readonly AsyncLocal<StrongBox<int>?> s_thrown = new();

    static SocketStreamTests() =>
        AppDomain.CurrentDomain.FirstChanceException += (_, _) => { if (s_thrown.Value is { } n) Interlocked.Increment(ref n.Value); };

    private static StrongBox<int> CountExceptions() => s_thrown.Value = new StrongBox<int>();

    private static async Task<(Socket Server, Socket Client)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        return (await listener.AcceptAsync(), client);
    }

    /// <summary>Closes with SO_LINGER 0: the kernel sends a reset, not a FIN.</summary>
    private static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    [Fact]
    public async Task After_a_reset_reads_end_and_writes_are_dropped_without_an_exception()
    {
        var (server, client) = await PairAsync();
        await using var stream = new SocketStream(server);
        var thrown = CountExceptions();
        var pending = stream.ReadAsync(new byte[16]).AsTask(); // waiting when the reset comes
        await Task.Delay(50);
        Reset(client);

        Assert.Equal(0, await pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(stream.PeerReset);
        await stream.WriteAsync(new byte[100]);
        await stream.FlushAsync();
        Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        Assert.Equal(0, thrown.Value);
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_without_taking_it()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        await using var stream = new SocketStream(server);
        var wait = stream.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(50);
        Assert.False(wait.IsCompleted);
        await client.SendAsync("hi"u8.ToArray());
        Assert.Equal(0, await wait.WaitAsync(TimeSpan.FromSeconds(10)));
        var buffer = new byte[8];
        Assert.Equal(2, await stream.ReadAtLeastAsync(buffer, 2));
        Assert.Equal("hi"u8.ToArray(), buffer[..2]);
    }

    [Fact]
    public async Task A_write_that_meets_the_reset_is_dropped_and_the_next_read_ends_without_an_exception()
    {
        var (server, client) = await PairAsync();
        await using var stream = new SocketStream(server);
        Reset(client);
        var thrown = CountExceptions();
        // The first send after the reset may still be accepted by the kernel; the one after it meets the reset.
        for (int i = 0; i < 5 && !stream.PeerReset; i++)
        {
            await stream.WriteAsync(new byte[1000]);
            await stream.FlushAsync();
            await Task.Delay(20);
        }
        Assert.True(stream.PeerReset);
        Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        Assert.Equal(0, thrown.Value);
    }

    [Fact]
    public async Task A_read_that_finds_the_reset_ends_without_an_exception()
    {
        var (server, client) = await PairAsync();
        await using var stream = new SocketStream(server);
        await client.SendAsync(new byte[10]);
        await Task.Delay(50); // unread by the client: its close resets
        var thrown = CountExceptions();
        Assert.Equal(10, await stream.ReadAtLeastAsync(new byte[10], 10));
        await stream.WriteAsync(new byte[10]);
        Reset(client);
        await Task.Delay(50);
        Assert.Equal(0, await stream.ReadAsync(new byte[16]));
        Assert.True(stream.PeerReset);
        Assert.Equal(0, thrown.Value);
    }

    [Fact]
    public async Task A_cancelled_read_is_a_cancellation_that_lets_writes_on_and_a_closed_socket_an_io_error()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        var stream = new SocketStream(server);
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.ReadAsync(new byte[16], cts.Token).AsTask());
        // A cancelled read ends reading, not writing: a last word (a TLS close_notify, a DISCONNECT) still goes out.
        await stream.WriteAsync("bye"u8.ToArray());
        var got = new byte[3];
        Assert.Equal(3, await client.ReceiveAsync(got));
        Assert.Equal("bye"u8.ToArray(), got);
        await stream.DisposeAsync();
        await Assert.ThrowsAsync<IOException>(() => stream.ReadAsync(new byte[16]).AsTask());
        await Assert.ThrowsAsync<IOException>(() => stream.WriteAsync(new byte[16]).AsTask());
    }

    [Fact]
    public async Task A_write_larger_than_the_socket_buffers_waits_and_arrives_whole()
    {
        var (server, client) = await PairAsync();
        using var _ = client;
        await using var stream = new SocketStream(server);
        var data = new byte[8 << 20];
        new Random(1).NextBytes(data);
        var write = stream.WriteAsync(data).AsTask();
        var got = new byte[data.Length];
        int n = 0;
        while (n < got.Length) n += await client.ReceiveAsync(got.AsMemory(n));
        await write.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(data, got);
    }

    [Fact]
    public async Task Data_before_a_plain_close_is_read_whole_and_the_close_ends_the_stream()
    {
        var (server, client) = await PairAsync();
        await using var stream = new SocketStream(server);
        await client.SendAsync("hello"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        var buffer = new byte[16];
        Assert.Equal(5, await stream.ReadAtLeastAsync(buffer, 5));
        Assert.Equal(0, await stream.ReadAsync(buffer));
        Assert.False(stream.PeerReset);
        client.Dispose();
    }

    [Fact]
    public async Task A_tls_client_that_resets_after_its_handshake_reads_as_gone_on_the_server_without_an_exception()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var self = new CertificateRequest("CN=reset", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var cert = X509CertificateLoader.LoadPkcs12(self.Export(X509ContentType.Pkcs12), null);
        var (server, client) = await PairAsync();
        await using var tls = new SslStream(new WriteCoalescingStream(new SocketStream(server)));
        await using var peer = new SslStream(new NetworkStream(client, ownsSocket: false), false, (_, _, _, _) => true);
        await Task.WhenAll(
            tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = cert }),
            peer.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "reset" }));

        var thrown = CountExceptions();
        var read = tls.ReadAsync(new byte[64]).AsTask();
        await Task.Delay(50); // waiting when the reset comes
        Reset(client);
        Assert.Equal(0, await read.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, thrown.Value); // not one exception on the way, in the socket, TLS or above
    }
}
