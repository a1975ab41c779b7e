using System.Text;
using System.Threading.Channels;
using Isotun.Server;
using Isotun.State;
using Isotun.UnitTests.Core.Logs;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// The deadlines of the HTTP phase, on a scripted peer: a request head sent a byte at a time, a body slower than the
/// minimum rate, and a peer that sends requests but never reads the replies. Each closes only its connection, with
/// the reason.
/// </summary>
public sealed class HttpPhaseDeadlineTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly RecordingLogger _log = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>A peer: what the server reads comes from <see cref="Send"/>; what it writes is kept, or never taken.</summary>
    private sealed class ScriptedPeer(bool neverReads) : DuplexTestStream
    {
        private readonly Channel<byte[]> _incoming = Channel.CreateUnbounded<byte[]>();
        private byte[] _current = [];
        private int _offset;
        public readonly MemoryStream Written = new();

        public void Send(string text) => _incoming.Writer.TryWrite(Encoding.ASCII.GetBytes(text));

        /// <summary>The peer hangs up: the server reads the end of the stream.</summary>
        public void Hangup() => _incoming.Writer.TryComplete();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            while (_offset == _current.Length)
            {
                if (!await _incoming.Reader.WaitToReadAsync(ct)) return 0;
                _incoming.Reader.TryRead(out var next);
                (_current, _offset) = (next!, 0);
            }
            int n = Math.Min(buffer.Length, _current.Length - _offset);
            _current.AsMemory(_offset, n).CopyTo(buffer);
            _offset += n;
            return n;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            if (neverReads) await Task.Delay(Timeout.Infinite, ct); // a full socket buffer, for ever
            lock (Written) Written.Write(buffer.Span);
        }
    }

    private async Task<VpnServer> ServerAsync()
    {
        var path = TestServerConfig.Write(_temp, """
            limits:
              auth-timeout: 30
              request-timeout: 1
              write-timeout: 1
              min-body-rate: 100
            tenants:
              - name: t1
                pool: 10.10.0.0/24
            """);
        await Task.CompletedTask;
        return new VpnServer(TestServerConfig.Load(path), _log.Factory, new MemoryStateStore());
    }

    private async Task<string> RunAsync(VpnServer server, ScriptedPeer peer, Func<Task> script)
    {
        var run = new ServerConnection(server, 1, _log.Factory.CreateLogger("t")).RunAsync(peer, new PeerInfo(null, null, null), CancellationToken.None);
        await script();
        // Generous: the deadlines under test are 1 s (the body's 5 s grace plus its rate); the run must end on its own.
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        return string.Join("\n", _log.Lines.Select(l => l.Text));
    }

    [Fact]
    public async Task A_request_head_sent_a_byte_at_a_time_is_cut_off_at_the_request_timeout()
    {
        await using var server = await ServerAsync();
        var peer = new ScriptedPeer(neverReads: false);
        using var stop = new CancellationTokenSource();
        var log = await RunAsync(server, peer, () =>
        {
            // One byte every 200 ms, for ever (until the server hangs up): the head never completes.
            _ = Task.Run(async () =>
            {
                foreach (char c in "POST / HTTP/1.1\r\nHost: vpn\r\nX-Padding: " + new string('a', 10_000))
                {
                    if (stop.IsCancellationRequested) return;
                    peer.Send(c.ToString());
                    await Task.Delay(200);
                }
            });
            return Task.CompletedTask;
        });
        stop.Cancel();
        peer.Hangup();
        Assert.Contains("request head not complete within 1 s of its first byte", log);
    }

    [Fact]
    public async Task A_body_slower_than_the_minimum_rate_is_cut_off()
    {
        await using var server = await ServerAsync();
        var peer = new ScriptedPeer(neverReads: false);
        // 1000 bytes at 100 B/s at least: 5 s grace + 10 s. Only 10 bytes ever come.
        var log = await RunAsync(server, peer, () =>
        {
            peer.Send("POST / HTTP/1.1\r\nHost: vpn\r\nContent-Length: 1000\r\n\r\n0123456789");
            return Task.CompletedTask;
        });
        Assert.Contains("request body slower than 100 bytes/s", log);
    }

    [Fact]
    public async Task A_peer_that_never_reads_the_reply_is_closed_at_the_write_timeout()
    {
        await using var server = await ServerAsync();
        var peer = new ScriptedPeer(neverReads: true);
        const string init = """<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="init"><version who="vpn">v9.01</version><group-access>https://vpn/t1</group-access></config-auth>""";
        var log = await RunAsync(server, peer, () =>
        {
            peer.Send($"POST /t1 HTTP/1.1\r\nHost: vpn\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {init.Length}\r\n\r\n{init}");
            return Task.CompletedTask;
        });
        Assert.Contains("peer did not take a reply within 1 s", log);
    }

    [Fact]
    public async Task A_whole_request_on_time_is_answered()
    {
        await using var server = await ServerAsync();
        var peer = new ScriptedPeer(neverReads: false);
        var log = await RunAsync(server, peer, async () =>
        {
            peer.Send("GET / HTTP/1.1\r\nHost: vpn\r\n\r\n");
            // The form comes back; then the peer leaves.
            Assert.True(SpinWait.SpinUntil(() => { lock (peer.Written) return peer.Written.Length > 0; }, TimeSpan.FromSeconds(10)));
            await Task.Yield();
            peer.Hangup();
        });
        string reply;
        lock (peer.Written) reply = Encoding.ASCII.GetString(peer.Written.ToArray());
        Assert.StartsWith("HTTP/1.1 200 OK", reply);
        Assert.DoesNotContain("request head not complete", log);
    }
}
