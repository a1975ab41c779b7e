using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Isotun.Lab;

/// <summary>
/// The service behind the server in a lab: a text port that answers every connection with a fixed line
/// (which tenant am I talking to?), and a sink port that reads until the peer half-closes and answers
/// "&lt;sha256 hex&gt; &lt;bytes&gt;" so transfers can be proven byte-identical.
/// </summary>
public static class LabService
{
    public static async Task RunAsync(string text, int port, int sinkPort, CancellationToken ct)
    {
        using var textListener = Listen(port);
        using var sinkListener = Listen(sinkPort);
        await Task.WhenAll(AcceptLoop(textListener, s => AnswerText(s, text), ct), AcceptLoop(sinkListener, Sink, ct));
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
}
