using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Lab;

/// <summary>
/// The service behind the server in a lab: a text port that answers every connection with a fixed line
/// (which tenant am I talking to?), a sink port that reads until the peer half-closes and answers
/// "&lt;sha256 hex&gt; &lt;bytes&gt;" so transfers can be proven byte-identical, and next to it a source port
/// (<see cref="SourcePort"/>) for the other direction: the peer sends "&lt;count&gt;\n" and gets
/// <see cref="SourceBytes"/> of that length, then end of stream.
/// </summary>
public static class LabService
{
    /// <summary>Most bytes the source port sends on one connection.</summary>
    public const long MaxSourceBytes = 16L << 30;

    /// <summary>The source port sits right after the sink port.</summary>
    public static int SourcePort(int sinkPort) => sinkPort + 1;

    public static async Task RunAsync(string text, int port, int sinkPort, CancellationToken ct)
    {
        using var textListener = Listen(port);
        using var sinkListener = Listen(sinkPort);
        using var sourceListener = Listen(SourcePort(sinkPort));
        await Task.WhenAll(AcceptLoop(textListener, s => AnswerText(s, text), ct), AcceptLoop(sinkListener, Sink, ct), AcceptLoop(sourceListener, Source, ct));
    }

    private static Socket Listen(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        s.Bind(new IPEndPoint(IPAddress.Any, port));
        s.Listen(64);
        return s;
    }

    private static async Task AcceptLoop(Socket listener, Func<Socket, Task> handle, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var s = await listener.AcceptAsync(ct);
                _ = Task.Run(async () =>
                {
                    using (s)
                    {
                        try { await handle(s); } catch (Exception e) when (e is SocketException or IOException or OperationCanceledException) { }
                    }
                }, ct);
            }
        }
        catch (OperationCanceledException) { }
    }

    private static async Task AnswerText(Socket s, string text)
    {
        await s.SendAsync(Encoding.UTF8.GetBytes(text + "\n"));
        s.Shutdown(SocketShutdown.Send);
    }

    public static async Task Sink(Socket s)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[256 * 1024];
        long total = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        while (true)
        {
            int n = await s.ReceiveAsync(buf, cts.Token);
            if (n == 0) break;
            sha.AppendData(buf, 0, n);
            total += n;
        }
        await s.SendAsync(Encoding.ASCII.GetBytes($"{Convert.ToHexStringLower(sha.GetHashAndReset())} {total}\n"));
        s.Shutdown(SocketShutdown.Send);
    }

    public static async Task Source(Socket s)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var request = new byte[32];
        int got = 0;
        while (got < request.Length && Array.IndexOf(request, (byte)'\n', 0, got) < 0)
        {
            int n = await s.ReceiveAsync(request.AsMemory(got), cts.Token);
            if (n == 0) return;
            got += n;
        }
        int end = Array.IndexOf(request, (byte)'\n', 0, got);
        if (end < 0 || !long.TryParse(Encoding.ASCII.GetString(request, 0, end), out long count) || count < 0 || count > MaxSourceBytes) return;
        var buf = new byte[256 * 1024];
        ulong state = SourceSeed;
        for (long sent = 0; sent < count;)
        {
            int n = (int)Math.Min(buf.Length, count - sent);
            SourceBytes(buf.AsSpan(0, n), ref state);
            await s.SendAsync(buf.AsMemory(0, n), cts.Token);
            sent += n;
        }
        s.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Where <see cref="SourceBytes"/> starts: a receiver regenerates the stream to check it.</summary>
    public const ulong SourceSeed = 0x9e3779b97f4a7c15;

    /// <summary>The source port's bytes: xorshift64*, not periodic, so a lost, repeated or reordered chunk changes the hash.</summary>
    public static void SourceBytes(Span<byte> destination, ref ulong state)
    {
        for (int i = 0; i < destination.Length; i += 8)
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ulong v = state * 0x2545f4914f6cdd1d;
            for (int k = 0; k < 8 && i + k < destination.Length; k++) destination[i + k] = (byte)(v >> (8 * k));
        }
    }
}
