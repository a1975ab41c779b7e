using Isotun.Protocol.Cstp;
using Isotun.Server;
using Isotun.State;
using Isotun.Transport;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isotun.UnitTests.Core.Server;

/// <summary>
/// A peer that stops reading while it goes on sending keepalives: with batching the writer's frames count as written
/// once copied into the batch, and the queue behind the write that never ends may be empty. The write itself taking
/// 3×DPD ends the connection as a stalled dead peer.
/// </summary>
public sealed class TunnelStallTests
{
    [Fact]
    public async Task A_write_the_peer_never_takes_ends_the_tunnel_even_with_nothing_queued_behind_it()
    {
        var tenant = TenantWorld.Runtime(TenantWorld.Tenant("acme", "10.10.0.0/24", null) with { Dpd = 1 }, new MemoryStateStore());
        var session = new VpnSession(Guid.NewGuid(), tenant, "alice", DateTimeOffset.UtcNow.AddHours(1)) { Budget = new(MemoryBudget.DefaultBytes) };
        Assert.True(tenant.TryLease(session, null));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stream = new KeepaliveButDeafStream();
        var tunnel = new TunnelConnection(1, session, stream, new ConnectionReader(stream), 1400, IsotunExtension.Batch, NullLogger.Instance, stop.Token);
        Assert.Equal(EnqueueResult.Queued, tunnel.Link.Writer.Offer(PacketBuffer.Control(CstpPacketType.DpdRequest, ReadOnlySpan<byte>.Empty)));

        var end = await tunnel.RunAsync();

        Assert.Equal(TunnelEnd.DeadPeer, end);
        Assert.True(tunnel.StalledOut);
        Assert.False(stop.IsCancellationRequested, "the tunnel ran until the test gave up");
    }

    /// <summary>Sends a CSTP keepalive every 200 ms; takes no write (each waits until cancelled).</summary>
    private sealed class KeepaliveButDeafStream : DuplexStream
    {
        private static readonly byte[] Keepalive = PacketBuffer.Control(CstpPacketType.Keepalive, ReadOnlySpan<byte>.Empty).Frame.ToArray();

        private bool _ready; // a zero-byte read (an idle reader's wait) said data is there

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            if (!_ready) await Task.Delay(200, ct);
            _ready = buffer.IsEmpty;
            if (buffer.IsEmpty) return 0;
            Keepalive.CopyTo(buffer);
            return Keepalive.Length;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default) =>
            await Task.Delay(Timeout.Infinite, ct);

        public override void Flush()
        {
        }
    }
}
