using Isotun.Protocol.Cstp;
using Isotun.Transport;

namespace Isotun.Server;

/// <summary>Why a tunnel connection ended.</summary>
public enum TunnelEnd { PeerClosed, UserDisconnect, PeerDisconnect, BadFrame, DeadPeer, Replaced, PrimaryEnded, Shutdown, Error, Revoked }

/// <summary>
/// The sending half of one tunnel connection and its off switch: what the connection's session and the tenant's TUN
/// readers hold of it. The TUN readers offer frames to it; the session counts its traffic, and ends it when a new
/// group replaces it or its primary ends. The <see cref="TunnelConnection"/> that made it runs the reading half, and
/// ends when it is aborted.
/// </summary>
public sealed class Downlink
{
    private readonly CancellationTokenSource _cts = new();

    internal Downlink(int queue, int mtu, bool peerGso, bool peerUso, FrameWriter writer)
    {
        Queue = queue;
        Mtu = mtu;
        PeerGso = peerGso;
        PeerUso = peerUso;
        Writer = writer;
        Offer = writer.Offer;
    }

    /// <summary>Which queue of its session this is: 0 for the primary (and every stock client).</summary>
    public int Queue { get; }
    public int Mtu { get; }

    /// <summary>The peer negotiated GSO: it gets super-packets whole.</summary>
    public bool PeerGso { get; }

    /// <summary>The peer negotiated USO as well: UDP super-packets go to it whole.</summary>
    public bool PeerUso { get; }

    public FrameWriter Writer { get; }

    /// <summary>The writer's <see cref="FrameWriter.Offer"/> as one cached delegate, for the TUN reader's hot path.</summary>
    public Func<PacketBuffer, EnqueueResult> Offer { get; }

    /// <summary>Payload bytes and frames received on the connection and written to the TUN (its reader alone adds to them).</summary>
    public long RxBytes;
    public long RxFrames;

    /// <summary>Why the connection ended, once it has (or was told to).</summary>
    public TunnelEnd? EndReason { get; private set; }

    /// <summary>Cancelled when the connection is to end.</summary>
    internal CancellationToken Ending => _cts.Token;

    /// <summary>Ends the connection from outside (replaced by a reconnect, server shutdown). Harmless once it has ended.</summary>
    public void Abort(TunnelEnd reason)
    {
        EndReason ??= reason;
        _cts.Cancel();
    }

    /// <summary>The connection ended on its own, for <paramref name="reason"/> (unless it was told to end before).</summary>
    internal void Ended(TunnelEnd reason) => EndReason ??= reason;

    /// <summary>
    /// Ends the connection for good from outside (a kick, a revoked user): the peer is sent a CSTP DISCONNECT with the
    /// reason, as ocserv does on a kick (openconnect then stops instead of retrying), given up to a second to go out,
    /// and the connection is closed. Blocks its caller for that second at most; call it off the data path.
    /// </summary>
    public void Kick(string reason) => Kick([(this, reason)]);

    /// <summary>
    /// <see cref="Kick(string)"/> for several connections at once: every DISCONNECT is queued first, and all share the
    /// one second, so ending a tenant's many sessions (some of whose peers read nothing) takes a second, not one each.
    /// </summary>
    public static void Kick(IReadOnlyList<(Downlink Link, string Reason)> kicks)
    {
        var waits = new (Downlink Link, long Before)[kicks.Count];
        int n = 0;
        foreach (var (link, reason) in kicks)
        {
            var text = System.Text.Encoding.ASCII.GetBytes(reason.Length > 100 ? reason[..100] : reason);
            var payload = new byte[1 + text.Length];
            payload[0] = CstpDisconnectReason.Error;
            text.CopyTo(payload, 1);
            long before = Volatile.Read(ref link.Writer.FramesWritten);
            // Written is not enough: the frame sits under the TLS layer until the writer flushes.
            if (link.Writer.TryEnqueue(PacketBuffer.Control(CstpPacketType.Disconnect, payload))) waits[n++] = (link, before);
        }
        SpinWait.SpinUntil(() =>
        {
            for (int i = 0; i < n; i++)
                if (Volatile.Read(ref waits[i].Link.Writer.FramesFlushed) <= waits[i].Before && waits[i].Link.EndReason is null) return false;
            return true;
        }, TimeSpan.FromSeconds(1));
        foreach (var (link, _) in kicks) link.Abort(TunnelEnd.Revoked);
    }
}
