namespace Isotun.Client;

/// <summary>Exit codes of `isotun connect`, stable for scripts. Documented in docs/client.md.</summary>
public enum ClientExitCode
{
    /// <summary>Disconnected on request (Ctrl-C / SIGTERM), after telling the server.</summary>
    Ok = 0,
    /// <summary>Network or system failure: unreachable server, lost connection that did not come back, TUN errors.</summary>
    Failure = 1,
    /// <summary>Bad command line or options.</summary>
    Usage = 2,
    /// <summary>The server refused the credentials.</summary>
    AuthFailed = 3,
    /// <summary>The server rejected the session cookie, ended the session, or gave another address on reconnect.</summary>
    SessionEnded = 4,
    /// <summary>The server broke the protocol: garbage, truncated headers, no MTU or address.</summary>
    ProtocolError = 5,
    /// <summary>The server certificate did not match the pin or the CA.</summary>
    CertificateRejected = 6,
}

/// <remarks>
/// The message often quotes the server (a reason, a form's error): it is made safe for a terminal and a log line here,
/// once for every such text. Control characters (C0 and C1, which some terminals act on), bidirectional overrides and
/// line breaks become '?', and it is cut at <see cref="MaxMessageLength"/> characters.
/// </remarks>
public sealed class ClientException(ClientExitCode code, string message) : Exception(Printable(message))
{
    public const int MaxMessageLength = 500;

    public ClientExitCode Code { get; } = code;

    /// <summary>
    /// A failure of the moment rather than of the server's protocol (an answer cut short, or none in time): exit
    /// <see cref="Code"/> on a first connection, but a reconnect tries again, as after a lost connection.
    /// </summary>
    public bool Transient { get; init; }

    public static string Printable(string text)
    {
        var shown = text.Length > MaxMessageLength ? text[..MaxMessageLength] + "…" : text;
        return string.Create(shown.Length, shown, static (span, s) =>
        {
            for (int i = 0; i < s.Length; i++)
                span[i] = char.IsControl(s[i]) || s[i] is >= '\u202a' and <= '\u202e' or >= '\u2066' and <= '\u2069' ? '?' : s[i];
        });
    }
}
