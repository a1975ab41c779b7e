using System.Net;
using System.Text.RegularExpressions;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;

namespace Isotun.Integration.DataPath;

/// <summary>
/// The `queues` extension for real: the lab (tenant `queues: 2`, client `--queues 2`) joins a second TLS connection
/// to its session, over multi-queue TUNs on both ends. Many parallel flows must spread over both connections and
/// arrive byte-identical; a lost queue must not take the session down, and a reconnect must bring the group back.
/// Raw clients check the server's rules for joining. Which connection carried what is read from the server's
/// per-queue counters, never inferred from timings.
/// </summary>
[Collection(DataPathCollection.Name)]
public sealed partial class QueueTests(DataPathFixture fx, Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Offer = "batch, gso, queues";
    private LabLayout L => fx.Layout;

    [SkippableFact]
    public void The_lab_client_joins_a_second_queue_and_parallel_flows_spread_over_both_byte_identical()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        // Both TUNs are multi-queue with two queues.
        Assert.Contains("multi_queue numqueues 2", Run.Exec("ip", ["-n", L.ClientNs, "-d", "link", "show", "dev", LabLayout.ClientTun]).Stdout);
        Assert.Contains("multi_queue numqueues 2", Run.Exec("ip", ["-n", L.TenantNs, "-d", "link", "show"]).Stdout);
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => QueueJoins(fx.ClientAddress).Count > 0), "the lab client's session has no queue 1");
        Assert.Contains(fx.LogLines("client"), l => l.Contains("2 queues up"));

        const int flows = 16;
        const long size = 8L * 1024 * 1024;
        var rx0 = QueueBytes("rx");
        var tx0 = QueueBytes("tx");
        // 16 flows: the chance that all of them hash to one of two queues is 2 in 65536.
        Parallel.For(0, flows, new ParallelOptions { MaxDegreeOfParallelism = flows }, _ =>
        {
            var (sent, reply) = Transfer.Upload(L.ClientNs, new IPEndPoint(L.ServiceIp, LabLayout.SinkPort), null, size);
            Assert.Equal($"{sent} {size}", reply);
        });
        Parallel.For(0, flows, new ParallelOptions { MaxDegreeOfParallelism = flows }, _ =>
        {
            var (expected, received, count) = Transfer.Download(L.ClientNs, new IPEndPoint(L.ServiceIp, LabService.SourcePort(LabLayout.SinkPort)), null, size);
            Assert.Equal(size, count);
            Assert.Equal(expected, received);
        });
        var rx = QueueBytes("rx").Zip(rx0, (a, b) => a - b).ToArray();
        var tx = QueueBytes("tx").Zip(tx0, (a, b) => a - b).ToArray();
        output.WriteLine($"client → server by queue: {string.Join(", ", rx)}; server → client by queue: {string.Join(", ", tx)}");
        // Each direction: every flow's bytes counted once, and each queue carried at least one whole flow.
        Assert.True(rx.Sum() >= flows * size, $"only {rx.Sum()} bytes counted in");
        Assert.True(tx.Sum() >= flows * size, $"only {tx.Sum()} bytes counted out");
        Assert.All(rx, b => Assert.True(b >= size, $"client → server: a queue carried only {b} bytes ({string.Join(", ", rx)})"));
        Assert.All(tx, b => Assert.True(b >= size, $"server → client: a queue carried only {b} bytes ({string.Join(", ", tx)})"));
        Assert.DoesNotContain(fx.LogLines("client"), l => l.Contains("connection lost") || l.Contains("lost ("));
    }

    [SkippableFact]
    public void A_lost_queue_leaves_the_session_working_and_a_reconnect_restores_the_group()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        // A client of its own, so the lab's witness client never sees a lost connection.
        using (var client = new SideClient(L, fx.Pin, "queue-client", "dpq0", "1011", "--queues", "2"))
        {
            var address = client.Address;
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => client.Count("2 queues up (TLS") == 1 && QueueJoins(address).Count == 1),
                "the queue client did not join its queue:\n" + client.Tail());
            double active = Metric("isotun_queues_active");

            // Only the queue's TCP connection dies: the server lets it go, and the session goes on, both ways.
            var kill = Run.InNs(L.ClientNs, "ss", "-K", "dst", L.ServerIp.ToString(), "dport", "=", ":443", "sport", "=", $":{QueueJoins(address)[0]}");
            Assert.True(kill.ExitCode == 0, kill.ToString());
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => client.Count("queue 1 lost") == 1), "the client did not notice the lost queue");
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => fx.LogLines("server").Any(l => l.Contains("(queue 1)") && l.Contains($"session={SessionOf(address)}"))),
                "the server did not let the queue go");
            AssertTransfers(address);
            // The client joins the queue again by itself, without a reconnect of the session.
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => client.Count("queue 1 joined again") == 1 && QueueJoins(address).Count == 2),
                "the queue was not joined again:\n" + client.Tail());
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(5), () => Metric("isotun_queues_active") == active), "the server does not count the queue again");
            AssertTransfers(address);
            Assert.Equal(1, client.Count("2 queues up (TLS"));
            Assert.Equal(0, client.Count("connection lost"));

            // Then the primary goes too: the client reconnects the whole group, with the same address.
            Assert.True(Run.InNs(L.ClientNs, "ss", "-K", "dst", L.ServerIp.ToString(), "dport", "=", ":443", "sport", "=", $":{PrimaryPort(address)}").ExitCode == 0);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(30), () => client.Count("2 queues up (TLS") == 2), "the group did not come back:\n" + client.Tail());
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(15), () => Metric("isotun_queues_active") == active), "the server does not count the new queue");
            Assert.Equal(1, client.Count($"reconnected with the same address {address}"));
            Assert.Equal(address, DataPathTests.AddressOf(L, client.Device));
            AssertTransfers(address);
        }
        TunnelTests.AssertPing(L.ClientNs, L.ServiceIp); // the lab client's tunnel is untouched
    }

    /// <summary>8 flows each way from <paramref name="from"/>, each byte-identical.</summary>
    private void AssertTransfers(IPAddress from)
    {
        const long size = 2L * 1024 * 1024;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            var (sent, reply) = Transfer.Upload(L.ClientNs, new IPEndPoint(L.ServiceIp, LabLayout.SinkPort), from, size);
            Assert.Equal($"{sent} {size}", reply);
            var (expected, received, count) = Transfer.Download(L.ClientNs, new IPEndPoint(L.ServiceIp, LabService.SourcePort(LabLayout.SinkPort)), from, size);
            Assert.Equal((size, expected), (count, received));
        });
    }

    [SkippableFact]
    public async Task A_raw_queue_joins_a_session_carries_its_packets_and_ends_with_its_primary()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var cookie = fx.Cookie();
        using var primary = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var head = await primary.ConnectTunnelAsync(cookie, Offer, null, (IsotunExtensions.QueuesHeader, "8"));
        Assert.Equal(IsotunExtension.Batch | IsotunExtension.Gso | IsotunExtension.Queues, IsotunExtensions.Parse(head.Headers.Get(IsotunExtensions.Header)));
        Assert.Equal("2", head.Headers.Get(IsotunExtensions.QueuesHeader)); // asked 8, the tenant allows 2
        double active = Metric("isotun_queues_active"), rx1 = QueueBytes("rx")[1];

        using var queue = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var qhead = await queue.ConnectTunnelAsync(cookie, Offer, null, (IsotunExtensions.QueueHeader, "1"));
        Assert.Equal(primary.Address, queue.Address);
        Assert.Equal("1", qhead.Headers.Get(IsotunExtensions.QueueHeader));
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(5), () => Metric("isotun_queues_active") == active + 1), "the queue is not counted");

        // An echo sent on the queue is taken in as the queue's; the reply comes on the connection its flow hashes to.
        var request = RawCstpClient.EchoRequest(queue.Address, L.TunnelGateway, 0x151, 1);
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(request, out var info));
        var replyOn = FlowHash.Pick(FlowHash.Of(request, info), 2) == 0 ? primary : queue; // the hash is symmetric
        await queue.SendFrameAsync(CstpPacketType.Data, request);
        Assert.NotNull(await replyOn.ReceiveAsync(p => RawCstpClient.IsEchoReply(p, 0x151, 1)));
        Assert.True(QueueBytes("rx")[1] > rx1, "the server did not count the echo on queue 1");

        // The primary goes: the server closes its queue too.
        primary.Dispose();
        Assert.True(await queue.WaitForCloseAsync(), "the queue outlived its primary");
        Assert.True(Eventually.Until(TimeSpan.FromSeconds(5), () => Metric("isotun_queues_active") == active), "the server still counts the queue");
    }

    [SkippableFact]
    public async Task An_echo_whose_flow_hashes_to_a_busy_queue_is_answered_on_the_quiet_one()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var cookie = fx.Cookie();
        using var primary = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        await primary.ConnectTunnelAsync(cookie, Offer, null, (IsotunExtensions.QueuesHeader, "2"));
        using var queue = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        await queue.ConnectTunnelAsync(cookie, Offer, null, (IsotunExtensions.QueueHeader, "1"));
        const ushort id = 0x152;
        var probe = RawCstpClient.EchoRequest(primary.Address, L.TunnelGateway, id, 1);
        Assert.Equal(IpParseResult.Ok, IpPacket.TryParse(probe, out var info));
        var (busy, quiet) = FlowHash.Pick(FlowHash.Of(probe, info), 2) == 0 ? (primary, queue) : (queue, primary);

        // While the queue its hash gives carries a stream of other traffic (UDP to a port nobody listens on, sent on
        // that connection), echoes sent there too are answered on the other connection. The first one or two may
        // still come where the hash says: the server needs two looks at the connections' traffic to see a rate.
        var junk = Frames(Udp(primary.Address, L.TunnelGateway, 40000, 9, 1200), 64);
        int received = 0;
        for (ushort seq = 1; seq <= 6; seq++)
        {
            var until = DateTime.UtcNow.AddMilliseconds(150);
            while (DateTime.UtcNow < until) Assert.True(await busy.SendAsync(junk));
            Assert.True(await busy.SendFrameAsync(CstpPacketType.Data, RawCstpClient.EchoRequest(primary.Address, L.TunnelGateway, id, seq)));
            if (seq < 3) continue;
            Assert.True(await quiet.ReceiveEchoReplyAsync(id, seq, TimeSpan.FromSeconds(5)) is not null,
                $"echo {seq} was not answered on the quiet connection");
            received++;
        }
        Assert.Equal(4, received);
    }

    /// <summary>An IPv4 UDP packet (no UDP checksum) with <paramref name="size"/> bytes of payload.</summary>
    private static byte[] Udp(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, int size)
    {
        var p = new byte[28 + size];
        p[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[8] = 64;
        p[9] = 17;
        source.GetAddressBytes().CopyTo(p, 12);
        destination.GetAddressBytes().CopyTo(p, 16);
        Protocol.Offload.Checksum.WriteIpv4HeaderChecksum(p, 20);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), sourcePort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), destinationPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)(8 + size));
        return p;
    }

    /// <summary><paramref name="count"/> DATA frames of <paramref name="packet"/>, back to back, for one write.</summary>
    private static byte[] Frames(byte[] packet, int count)
    {
        var one = RawCstpClient.Frame(CstpPacketType.Data, packet);
        var all = new byte[one.Length * count];
        for (int i = 0; i < count; i++) one.CopyTo(all, i * one.Length);
        return all;
    }

    [SkippableFact]
    public async Task Bad_queue_requests_are_refused_and_closed_each_alone_and_hurt_no_session()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        var cookie = fx.Cookie();
        double refused = fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\"");
        // No primary yet: nothing to join.
        await Refused(cookie, Offer, "1", 409);
        using var primary = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        await primary.ConnectTunnelAsync(cookie, Offer, null, (IsotunExtensions.QueuesHeader, "2"));
        await Refused(cookie, Offer, "2", 409);            // at the granted count
        await Refused(cookie, "batch, gso", "1", 400);     // without the extension
        string[] malformed = ["0", "16", "-1", "+1", "x", "1 1", "0x1", "99999999999", ""];
        foreach (var index in malformed) await Refused(cookie, Offer, index, 400);
        Assert.Equal(refused + 3 + malformed.Length, fx.Metric("isotun_connections_closed_total", "reason=\"bad-request\""));
        // The session and the lab client are untouched.
        Assert.NotNull(await primary.EchoAsync(L.TunnelGateway, 9));
        TunnelTests.AssertPing(L.ClientNs, L.ServiceIp);
    }

    private async Task Refused(string cookie, string offer, string index, int status)
    {
        using var c = await RawCstpClient.ConnectTlsAsync(L.ClientNs, fx.Server, fx.Pin);
        var head = await c.TryConnectTunnelAsync(cookie, offer, null, (IsotunExtensions.QueueHeader, index));
        Assert.True(head.StatusCode == status, $"queue '{index}' with '{offer}': HTTP {head.StatusCode}, expected {status}");
        Assert.True(await c.WaitForCloseAsync(), $"queue '{index}': the connection stayed open");
    }

    /// <summary>The short id of the latest session at <paramref name="address"/>.</summary>
    private string SessionOf(IPAddress address) =>
        fx.LogLines("server").Where(l => l.Contains($"at {address} (mtu")).Select(l => SessionOf().Match(l).Groups[1].Value).Last();

    /// <summary>Client ports of the queues joined by the session at <paramref name="address"/>, oldest first.</summary>
    private List<int> QueueJoins(IPAddress address)
    {
        var lines = fx.LogLines("server");
        var sessions = lines.Where(l => l.Contains($"at {address} (mtu")).Select(l => SessionOf().Match(l).Groups[1].Value).ToHashSet();
        return lines.Select(l => QueueJoin().Match(l)).Where(m => m.Success && sessions.Contains(m.Groups[1].Value))
            .Select(m => int.Parse(m.Groups[2].Value)).ToList();
    }

    /// <summary>The client port of the latest primary connection of the session at <paramref name="address"/>.</summary>
    private int PrimaryPort(IPAddress address)
    {
        var m = fx.LogLines("server").Select(l => PrimaryUp().Match(l)).Last(m => m.Success && m.Groups[1].Value == address.ToString());
        return int.Parse(m.Groups[2].Value);
    }

    [GeneratedRegex(@"tunnel up for \S+ at ([\d.]+) \(.*\) from [\d.]+:(\d+)")]
    private static partial Regex PrimaryUp();

    [GeneratedRegex(@"session=(\w+) ")]
    private static partial Regex SessionOf();

    [GeneratedRegex(@"session=(\w+) conn=\d+ queue 1 of 2 joined from [\d.]+:(\d+)")]
    private static partial Regex QueueJoin();

    private int Count(string log, string text) => fx.LogLines(log).Count(l => l.Contains(text));

    private double Metric(string name, params string[] filters) => fx.Metric(name, ["tenant=\"demo\"", .. filters]);

    private long[] QueueBytes(string direction)
    {
        var scrape = fx.Scrape();
        return [.. Enumerable.Range(0, 2).Select(q => (long)ServerMetrics.Sum(scrape, "isotun_tunnel_queue_bytes_total", "tenant=\"demo\"", $"queue=\"{q}\"", $"direction=\"{direction}\""))];
    }
}
