using System.Runtime.InteropServices;

namespace Isotun.Cli.Commands;

/// <summary>Turns SIGINT/SIGTERM into cancellation, so servers drain and clients log off cleanly.</summary>
internal sealed class Signals : IDisposable
{
    /// <summary>
    /// Undoes an inherited "ignore SIGINT/SIGTERM". A non-interactive shell starts `cmd &amp;` with SIGINT ignored,
    /// and .NET then keeps ignoring it, registration or not: `kill -INT` would leave a client connected and its
    /// cookie valid. Isotun's verbs treat both signals as "stop cleanly", whoever started them. Must run before
    /// anything touches Console, Process or PosixSignalRegistration (the runtime reads the disposition once).
    /// </summary>
    public static void HonourStopSignals()
    {
        const int SIGINT = 2, SIGTERM = 15;
        nint SIG_DFL = 0, SIG_IGN = 1;
        foreach (int sig in (int[])[SIGINT, SIGTERM])
            if (signal(sig, SIG_DFL) is var previous && previous != SIG_IGN && previous != SIG_DFL)
                signal(sig, previous); // someone's real handler: leave it
    }

    [DllImport("libc")]
    private static extern nint signal(int sig, nint handler);

    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration[] _registrations;

    public Signals()
    {
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
        ];
    }

    public CancellationToken Token => _cts.Token;

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        _cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
