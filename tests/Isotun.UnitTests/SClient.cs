using System.Diagnostics;

namespace Isotun.UnitTests;

/// <summary>
/// A stock TLS client for one connection, openssl s_client: what the resumption tests take a session ticket from
/// (<c>-sess_out</c>) and bring it back with (<c>-sess_in</c>).
/// </summary>
internal sealed class SClient : IDisposable
{
    public const string OpenSsl = "/usr/bin/openssl";

    private readonly Process _process;
    private readonly System.Text.StringBuilder _seen = new();
    private readonly Task _reading;
    private readonly Task<string> _errors;

    private SClient(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(OpenSsl) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("s_client");
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _reading = Task.Run(async () =>
        {
            var chunk = new char[4096];
            int n;
            while ((n = await _process.StandardOutput.ReadAsync(chunk)) > 0)
                lock (_seen) _seen.Append(chunk, 0, n);
        });
        _errors = _process.StandardError.ReadToEndAsync();
    }

    /// <summary>Why a test of <paramref name="what"/> cannot run here, or null.</summary>
    public static string? SkipReason(string what) =>
        File.Exists(OpenSsl) ? null : $"{OpenSsl} is missing (Debian package openssl; .ci/install-deps installs it): {what} was not checked";

    /// <summary>Starts <c>openssl s_client ARGS</c>; it connects at once.</summary>
    public static SClient Start(params string[] args) => new(args);

    /// <summary>
    /// Keeps the client's input open until its handshake is done (up to 10 s on a busy machine) and <paramref
    /// name="holdOpen"/> more, for the tickets that follow a TLS 1.3 handshake; then ends it: s_client saves its session
    /// as it leaves. Returns what it printed.
    /// </summary>
    public async Task<string> EndAsync(TimeSpan holdOpen)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!HandshakeDone(Seen) && !_process.HasExited && DateTime.UtcNow < deadline) await Task.Delay(20);
        await Task.Delay(holdOpen);
        _process.StandardInput.Close();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _errors;
        await _reading;
        return Seen;
    }

    private string Seen
    {
        get
        {
            lock (_seen) return _seen.ToString();
        }
    }

    /// <summary>s_client prints its summary ("New, TLSv1.3, …" or "Reused, …") once the handshake is done.</summary>
    private static bool HandshakeDone(string output) =>
        output.Contains("New, ", StringComparison.Ordinal) || output.Contains("Reused, ", StringComparison.Ordinal);

    /// <summary>Types <paramref name="line"/> into the client (data for the server, or one of its command letters).</summary>
    public async Task SendLineAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

    public void Dispose() => _process.Dispose();
}
