namespace Isotun.State.Cluster;

/// <summary>A lease kept alive in the background until this is disposed (disposing does not revoke the lease).</summary>
public interface ILeaseKeepAlive : IAsyncDisposable
{
    long Lease { get; }

    /// <summary>
    /// Completes when a renewal finds the lease ended (it expired, was revoked, or renewals failed until it ran out),
    /// so up to a third of its TTL after the end, or when renewing fails in a way that is not transient (see
    /// <see cref="Failure"/>); never while renewals succeed.
    /// </summary>
    Task Lost { get; }

    /// <summary>Set when <see cref="Lost"/> completed because renewing failed in a way that is not transient.</summary>
    Exception? Failure { get; }
}
