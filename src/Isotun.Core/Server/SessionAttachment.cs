using Isotun.Metrics;

namespace Isotun.Server;

/// <summary>
/// One tunnel connection attached to its session, from <see cref="SessionRegistry.AttachPrimary"/> or
/// <see cref="SessionRegistry.TryAttachQueue"/> until it is disposed. Disposing it, which the connection does in a
/// <c>finally</c>, takes the connection out of its group (a primary takes the session's routes with it), keeps its
/// byte totals, and counts it down if <see cref="Up"/> counted it up: no exception can leave a dead connection routed
/// or counted. Disposing twice does nothing.
/// </summary>
public sealed class SessionAttachment : IDisposable
{
    private readonly VpnSession _session;
    private readonly Downlink _connection;
    private bool _up, _disposed;

    internal SessionAttachment(VpnSession session, Downlink connection)
    {
        _session = session;
        _connection = connection;
    }

    /// <summary>The CONNECT reply went out: the connection counts as a live session (a primary) or queue.</summary>
    public void Up()
    {
        if (_up) return;
        _up = true;
        Count(+1);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_up) Count(-1);
        // A primary's queues live and die with it: detaching it aborts them.
        _session.Detach(_connection);
        _session.AddTotals(_connection);
    }

    private void Count(int delta)
    {
        var metrics = _session.Tenant.Metrics;
        string tenant = _session.Tenant.Name;
        switch (_connection.Queue, delta)
        {
            case (0, > 0): metrics.SessionUp(tenant); break;
            case (0, _): metrics.SessionDown(tenant); break;
            case (_, > 0): metrics.QueueUp(tenant); break;
            default: metrics.QueueDown(tenant); break;
        }
    }
}
