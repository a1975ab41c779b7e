using System.Net;
using Isotun.Transport;

namespace Isotun.Server;

/// <summary>
/// A logged-in user's session, named by the cookie. It outlives TCP connections: a client that lost its
/// connection comes back with the cookie and gets the same addresses. It ends on a user DISCONNECT or
/// when the cookie expires. What its tenant sees of it (addresses, connections, site) is <see cref="TenantSession"/>.
/// </summary>
public sealed class VpnSession(Guid id, TenantRuntime tenant, string user, DateTimeOffset expiresAt) : TenantSession(id, user)
{
    public TenantRuntime Tenant { get; } = tenant;
    public DateTimeOffset ExpiresAt { get; } = expiresAt;

    /// <summary>The fingerprint of the credential the login was checked against (<see cref="Security.CredentialStamp"/>), or 0.</summary>
    public ulong Credential { get; init; }

    /// <summary>What the primary connection's CONNECT said about the client: its address, its software, the extensions agreed.</summary>
    public IPEndPoint? Source { get; private set; }
    public string? ClientVersion { get; private set; }
    public string Extensions { get; private set; } = "none";

    public void Connected(IPEndPoint? source, string? clientVersion, string extensions)
    {
        Source = source;
        ClientVersion = clientVersion;
        Extensions = extensions;
    }

    // Totals of connections that have ended; the live ones are added when read.
    private long _rxBytes, _rxFrames, _txBytes, _txFrames;

    /// <summary>Payload bytes and frames each way over the session's life, all connections and queues together.</summary>
    public (long RxBytes, long RxFrames, long TxBytes, long TxFrames) Traffic()
    {
        long rb = Interlocked.Read(ref _rxBytes), rf = Interlocked.Read(ref _rxFrames), tb = Interlocked.Read(ref _txBytes), tf = Interlocked.Read(ref _txFrames);
        foreach (var c in Live)
        {
            rb += Volatile.Read(ref c.RxBytes);
            rf += Volatile.Read(ref c.RxFrames);
            tb += Volatile.Read(ref c.Writer.BytesWritten);
            tf += Volatile.Read(ref c.Writer.FramesWritten);
        }
        return (rb, rf, tb, tf);
    }

    /// <summary>Keeps an ending connection's totals (called once it has stopped reading and writing).</summary>
    public void AddTotals(Downlink c)
    {
        Interlocked.Add(ref _rxBytes, Volatile.Read(ref c.RxBytes));
        Interlocked.Add(ref _rxFrames, Volatile.Read(ref c.RxFrames));
        Interlocked.Add(ref _txBytes, Volatile.Read(ref c.Writer.BytesWritten));
        Interlocked.Add(ref _txFrames, Volatile.Read(ref c.Writer.FramesWritten));
    }

    /// <summary>The user's rate limiters (shared by all of the user's sessions), or null when unlimited.</summary>
    public (TokenBucket Rx, TokenBucket Tx)? Limits { get; init; }

    /// <summary>What the session's connections may hold in queued frames, together.</summary>
    public MemoryBudget Budget { get; init; } = new(MemoryBudget.DefaultBytes);

    protected override void Routed() => Tenant.Attach(this);

    protected override void Unrouted() => Tenant.Detach(this);
}
