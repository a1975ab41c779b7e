using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Isotun.Security;
using Isotun.Server;
using Isotun.Transport;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// Successful handshakes are counted as full or resumed: a stock TLS client (openssl s_client) that comes back with
/// the session ticket it was given is counted as resumed, its first handshake as full.
/// </summary>
[Collection(InProcess.InProcessCollection.Name)] // apart from the in-process tests, whose clients may resume sessions of their own
public sealed class HandshakeKindTests
{
    [SkippableFact]
    public async Task A_client_back_with_its_ticket_is_a_resumed_handshake_and_its_first_a_full_one()
    {
        var skip = SClient.SkipReason("handshake kinds");
        Skip.If(skip is not null, skip);
        await using var recorded = new RecordedServer();
        var (server, log) = (recorded.Server, recorded.Log);
        // This server's handshakes only: servers of tests running beside this one count theirs in meters of the same name.
        using var counted = CountKinds(server.Metrics.Meter, out var kinds);

        using var listen = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listen.Listen(2);
        int port = ((IPEndPoint)listen.LocalEndPoint!).Port;
        var session = recorded.File("session.pem");

        int Resumed() { lock (kinds) return kinds.Count(k => k == "resumed"); }

        var first = await HandshakeAsync(server, log, listen, id: 1, port, "-sess_out", session);
        Assert.Contains("New, TLSv1.3", first);
        Assert.Equal(0, Resumed());
        lock (kinds) Assert.Contains("full", kinds);
        var second = await HandshakeAsync(server, log, listen, id: 2, port, "-sess_in", session);
        Assert.Contains("Reused, TLSv1.3", second); // the client says so too
        Assert.Equal(1, Resumed());
    }

    /// <summary>
    /// tls.ticket-key-file: a second server on the same files (a restart) resumes the first one's tickets from its very
    /// first client when the key file is the same, and not when it holds another key. (Without any key file, two
    /// servers in one process are no test of a restart: the second resumed the first one's tickets here, as the runtime
    /// reuses TLS state across them; a real restart without the file is a full handshake. The integration tests
    /// restart a real server process.)
    /// </summary>
    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_client_resumes_its_session_after_a_restart_when_the_ticket_key_is_kept(bool sameKey)
    {
        var skip = SClient.SkipReason("resumption across a restart");
        Skip.If(skip is not null, skip);
        using var files = new TempDirectory();
        var key = files.File("state/ticket.key");
        var session = files.File("session.pem");
        string first;
        await using (var before = new RecordedServer(files, "ticket-key-file: state/ticket.key"))
        {
            await before.Server.UseTicketKeyAsync(CancellationToken.None);
            first = await HandshakeOnceAsync(before, "-sess_out", session);
            Assert.Contains(before.Recording.Lines, l => l.Text.Contains($"TLS session tickets sealed with the key in {key}"));
        }
        Assert.True(first.Contains("New, TLSv1.3"), first);
        // Made at first start, for its owner alone.
        Assert.Equal(NativeTls.TicketKeyLength, new FileInfo(key).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        if (!sameKey) SecretFile.WriteAllBytes(key, RandomNumberGenerator.GetBytes(NativeTls.TicketKeyLength), overwrite: true);

        await using var after = new RecordedServer(files, "ticket-key-file: state/ticket.key");
        using var counted = CountKinds(after.Server.Metrics.Meter, out var kinds);
        await after.Server.UseTicketKeyAsync(CancellationToken.None);
        var second = await HandshakeOnceAsync(after, "-sess_in", session);
        Assert.True(second.Contains(sameKey ? "Reused, TLSv1.3" : "New, TLSv1.3"), second);
        lock (kinds) Assert.Equal([sameKey ? "resumed" : "full"], kinds);
    }

    internal static async Task<string> HandshakeOnceAsync(RecordedServer recorded, string sessionOption, string session)
    {
        using var listen = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listen.Listen(1);
        return await HandshakeAsync(recorded.Server, recorded.Log, listen, id: 1, ((IPEndPoint)listen.LocalEndPoint!).Port, sessionOption, session);
    }

    /// <summary>The kinds of the handshakes <paramref name="meter"/> counts from now on, as they are counted.</summary>
    private static MeterListener CountKinds(Meter meter, out List<string> kinds)
    {
        var counted = kinds = [];
        var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter == meter && i.Name == "isotun.tls.handshakes") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var t in tags)
                if (t.Key == "kind") lock (counted) counted.Add((string)t.Value!);
        });
        listener.Start();
        return listener;
    }

    /// <summary>One openssl s_client connection, served by RunTlsAsync; returns what the client printed.</summary>
    private static async Task<string> HandshakeAsync(VpnServer server, ILogger log, Socket listen, long id, int port, string sessionOption, string session)
    {
        using var client = SClient.Start("-connect", $"127.0.0.1:{port}", "-tls1_3", sessionOption, session);
        var accepted = await listen.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var serve = new ServerConnection(server, id, log).RunTlsAsync(accepted, CancellationToken.None);
        // Give the ticket time to arrive, then end the client: it saves the session as it leaves.
        var output = await client.EndAsync(TimeSpan.FromMilliseconds(500));
        await serve.WaitAsync(TimeSpan.FromSeconds(30));
        return output;
    }
}
