using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;

namespace Isotun.Integration.DataPath;

/// <summary>
/// isotun connect ↔ isotun server for real (namespaces, TUNs with offloads, separate processes): with the Isotun
/// extensions and without them, 100 MB each way must arrive byte-identical. Whether super-packets crossed whole
/// is read from the server's own counters, never from timings.
/// </summary>
[Collection(DataPathCollection.Name)]
public sealed class DataPathTests(DataPathFixture fx, Xunit.Abstractions.ITestOutputHelper output)
{
    private const long Size = 100L * 1024 * 1024;
    private const int Mtu = 1400; // the lab tenant's
    private LabLayout L => fx.Layout;
    private IPEndPoint Sink => new(L.ServiceIp, LabLayout.SinkPort);
    private IPEndPoint Source => new(L.ServiceIp, LabService.SourcePort(LabLayout.SinkPort));

    [SkippableFact]
    public void Isotun_peers_negotiate_batch_and_gso_and_100_MB_cross_byte_identical_both_ways()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        // Both TUNs were opened with virtio-net headers and TSO (gso_max_size is set only then).
        Assert.Contains("gso_max_size 65000", Run.Exec("ip", ["-n", L.ClientNs, "-d", "link", "show", "dev", LabLayout.ClientTun]).Stdout);
        Assert.Contains("gso_max_size 65000", Run.Exec("ip", ["-n", L.TenantNs, "-d", "link", "show"]).Stdout);
        // The server accepted every extension for the lab client's connection (two queues: the lab asks for them).
        Assert.Contains(fx.LogLines("server"), l => l.Contains($"at {fx.ClientAddress} (mtu {Mtu}, extensions: batch, gso, uso, queues=2)"));

        var (bytes0, packets0) = Rx();
        var (sent, reply) = Transfer.Upload(L.ClientNs, Sink, null, Size);
        Assert.Equal($"{sent} {Size}", reply);
        var (bytes1, packets1) = Rx();
        // The server counts one packet per frame it takes in: with GSO they are super-packets, far above the MTU.
        Assert.True(bytes1 - bytes0 >= Size, $"only {bytes1 - bytes0} bytes counted in");
        double perPacket = (bytes1 - bytes0) / Math.Max(1, packets1 - packets0);
        output.WriteLine($"with extensions: {bytes1 - bytes0} bytes in {packets1 - packets0} frames, {perPacket:0} per frame");
        Assert.True(perPacket > 2 * Mtu, $"{bytes1 - bytes0} bytes in {packets1 - packets0} packets: no super-packets crossed the tunnel");

        var (expected, received, count) = Transfer.Download(L.ClientNs, Source, null, Size);
        Assert.Equal(Size, count);
        Assert.Equal(expected, received);
        Assert.DoesNotContain(fx.LogLines("client"), l => l.Contains("connection lost"));
    }

    [SkippableFact]
    public void With_no_extensions_the_same_transfers_cross_as_plain_cstp_byte_identical()
    {
        Skip.If(TestEnvironment.SkipReason is not null, TestEnvironment.SkipReason);
        using (var client = new SideClient(L, fx.Pin, "plain-client", "dpplain0", "1010", "--no-extensions"))
        {
            var address = client.Address;
            // The client still reads super-packets from its own TUN (offloads do not depend on the peer) and cuts them itself.
            Assert.Contains("gso_max_size 65000", Run.Exec("ip", ["-n", L.ClientNs, "-d", "link", "show", "dev", client.Device]).Stdout);
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(10), () => fx.LogLines("server").Any(l => l.Contains($"at {address} (mtu {Mtu}, extensions: none)"))),
                "the server did not log the plain tunnel without extensions");

            var (bytes0, packets0) = Rx();
            var (sent, reply) = Transfer.Upload(L.ClientNs, Sink, address, Size);
            Assert.Equal($"{sent} {Size}", reply);
            var (bytes1, packets1) = Rx();
            Assert.True(bytes1 - bytes0 >= Size, $"only {bytes1 - bytes0} bytes counted in");
            double perPacket = (bytes1 - bytes0) / Math.Max(1, packets1 - packets0);
            output.WriteLine($"without extensions: {bytes1 - bytes0} bytes in {packets1 - packets0} frames, {perPacket:0} per frame");
            Assert.True(perPacket <= Mtu, $"{bytes1 - bytes0} bytes in {packets1 - packets0} packets: frames above the MTU on a plain tunnel");

            // Server → client: the server's TUN hands it super-packets and it cuts them into MTU segments for this peer.
            var (expected, received, count) = Transfer.Download(L.ClientNs, Source, address, Size);
            Assert.Equal(Size, count);
            Assert.Equal(expected, received);
            Assert.Equal(0, client.Count("connection lost"));
        }
        TunnelTests.AssertPing(L.ClientNs, L.ServiceIp); // the lab client's tunnel is untouched
    }

    /// <summary>The IPv4 address on a device in the lab's client namespace, or null.</summary>
    internal static IPAddress? AddressOf(LabLayout L, string dev)
    {
        var r = Run.Exec("ip", ["-n", L.ClientNs, "-4", "-o", "addr", "show", "dev", dev]);
        var parts = r.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = Array.IndexOf(parts, "inet");
        return r.ExitCode == 0 && i >= 0 && i + 1 < parts.Length && IPAddress.TryParse(parts[i + 1].Split('/')[0], out var a) ? a : null;
    }

    /// <summary>The tenant's data taken in from clients: payload bytes and packets (frames) written towards its TUN.</summary>
    private (double Bytes, double Packets) Rx() =>
        (fx.Metric("isotun_tunnel_bytes_total", "tenant=\"demo\"", "direction=\"rx\""), fx.Metric("isotun_tunnel_packets_total", "tenant=\"demo\"", "direction=\"rx\""));
}
