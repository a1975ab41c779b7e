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

public sealed class ClientException(ClientExitCode code, string message) : Exception(message)
{
    public ClientExitCode Code { get; } = code;
}
