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
    private readonly Task<string> _output;
    private readonly Task<string> _errors;

    private SClient(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(OpenSsl) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("s_client");
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _output = _process.StandardOutput.ReadToEndAsync();
        _errors = _process.StandardError.ReadToEndAsync();
    }

    /// <summary>Why a test of <paramref name="what"/> cannot run here, or null.</summary>
    public static string? SkipReason(string what) =>
        File.Exists(OpenSsl) ? null : $"{OpenSsl} is missing (Debian package openssl; .ci/install-deps installs it): {what} was not checked";

    /// <summary>Starts <c>openssl s_client ARGS</c>; it connects at once.</summary>
    public static SClient Start(params string[] args) => new(args);

    /// <summary>
    /// Keeps the client's input open for <paramref name="holdOpen"/> (the tickets that follow a TLS 1.3 handshake
    /// arrive meanwhile), then ends it: s_client saves its session as it leaves. Returns what it printed.
    /// </summary>
    public async Task<string> EndAsync(TimeSpan holdOpen)
    {
        await Task.Delay(holdOpen);
        _process.StandardInput.Close();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _errors;
        return await _output;
    }

    /// <summary>Types <paramref name="line"/> into the client (data for the server, or one of its command letters).</summary>
    public async Task SendLineAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

    public void Dispose() => _process.Dispose();
}
