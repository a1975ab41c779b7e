using System.Net;
using System.Net.Sockets;

namespace Isotun.Transport.Listening;

/// <summary>
/// The accept loop of every listener (the server's TLS listener, its PROXY v2 listener, the gateway): accept, admit
/// (<see cref="IConnectionAdmission"/>, before a byte is read; a refusal is reset and reported), then run the handler
/// on its own task (or on the accepting thread). The next steps (PROXY v2, TLS with its deadline) are the handler's, so each listener composes the
/// ones it needs. Each listening socket (<see cref="ListeningSockets"/>: one per core on one port) has a loop of its own.
/// A loop never ends on a socket error: running out of file descriptors or buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM)
/// backs off, up to a second, and is reported, and one connection's error is only that connection's. On stop it closes
/// the listening sockets and gives running handlers <c>drain</c> to finish.
/// </summary>
public sealed class ConnectionListener(IReadOnlyList<Socket> listening, IConnectionAdmission? admission, IListenerEvents events, Func<long> nextId)
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);
    private readonly HashSet<Task> _running = [];

    /// <summary>The accept call; tests replace it to inject failures.</summary>
    internal Func<Socket, CancellationToken, ValueTask<Socket>> Accept { get; init; } = static (s, ct) => s.AcceptAsync(ct);

    public int Running
    {
        get
        {
            lock (_running) return _running.Count;
        }
    }

    /// <param name="startOnAcceptThread">Run each handler on the accepting thread up to its first wait, instead of on a
    /// task of its own: one thread hand-off less per connection, for a handler that does little before its first wait
    /// (the gateway reads the ClientHello first; the server's TLS handshake makes its first flight when the ClientHello
    /// is already there). The next accept of that socket waits for it, so it needs a listening socket per core.</param>
    /// <param name="drain">How long the handlers still running get once the listeners close, read then (a reload may have changed it).</param>
    public async Task RunAsync(Func<AcceptedConnection, CancellationToken, Task> handler, Func<TimeSpan> drain, CancellationToken stopping, bool startOnAcceptThread = false)
    {
        // Started one after the other from here, the loops' sockets join the runtime's socket threads in turn.
        await Task.WhenAll(listening.Select(s => AcceptLoopAsync(s, handler, stopping, startOnAcceptThread))).ConfigureAwait(false);
        Task[] pending;
        lock (_running) pending = [.. _running];
        try
        {
            await Task.WhenAll(pending).WaitAsync(drain()).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Handlers end themselves on stopping; the ones still running after the drain are left to the process's end.
        }
    }

    private async Task AcceptLoopAsync(Socket listener, Func<AcceptedConnection, CancellationToken, Task> handler, CancellationToken stopping, bool startOnAcceptThread)
    {
        var backoff = TimeSpan.Zero;
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await Accept(listener, stopping).ConfigureAwait(false);
                backoff = TimeSpan.Zero;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                continue; // the peer gave up while in the backlog
            }
            catch (SocketException e)
            {
                backoff = backoff == TimeSpan.Zero ? TimeSpan.FromMilliseconds(10) : TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));
                events.AcceptFailed(Failure(e), backoff);
                try
                {
                    await Task.Delay(backoff, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                continue;
            }

            if (socket.RemoteEndPoint is not IPEndPoint remote)
            {
                socket.Dispose();
                continue;
            }
            if (admission?.Admit(remote.Address) is { } refusal)
            {
                events.Refused(remote, refusal); // counted before the peer can see the reset
                Reset(socket);
                continue;
            }
            var connection = new AcceptedConnection(socket, remote, nextId());
            var task = startOnAcceptThread ? ServeAsync(connection, handler, stopping) : Task.Run(() => ServeAsync(connection, handler, stopping), CancellationToken.None);
            lock (_running) _running.Add(task);
            _ = task.ContinueWith(t => { lock (_running) _running.Remove(t); }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        listener.Dispose();
    }

    private async Task ServeAsync(AcceptedConnection connection, Func<AcceptedConnection, CancellationToken, Task> handler, CancellationToken stopping)
    {
        try
        {
            await handler(connection, stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // What a peer (or a stop) can cause: the connection is over, nothing else is.
        }
        catch (Exception e)
        {
            events.HandlerFailed(connection.Id, e);
        }
        finally
        {
            connection.Socket.Dispose();
            admission?.Release(connection.Remote.Address);
        }
    }

    /// <summary>A refused connection is reset (no FIN handshake, no TIME_WAIT kept for it).</summary>
    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }
        socket.Dispose();
    }

    /// <summary>What an accept error was: resource exhaustion by its errno, else other.</summary>
    internal static AcceptFailure Failure(SocketException e) => (e.SocketErrorCode, e.NativeErrorCode) switch
    {
        (_, 24) or (SocketError.TooManyOpenSockets, _) => AcceptFailure.Emfile,
        (_, 23) => AcceptFailure.Enfile,
        (_, 105) or (SocketError.NoBufferSpaceAvailable, _) => AcceptFailure.Enobufs,
        (_, 12) => AcceptFailure.Enomem,
        _ => AcceptFailure.Other,
    };
}
