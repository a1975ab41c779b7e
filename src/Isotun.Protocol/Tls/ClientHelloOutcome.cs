namespace Isotun.Protocol.Tls;

/// <summary>
/// What <see cref="ClientHelloReader"/> made of the bytes so far. Everything but <see cref="NeedMore"/> is final.
/// Timeouts and early closes are the caller's to notice: the reader only sees bytes.
/// </summary>
public enum ClientHelloOutcome
{
    /// <summary>The ClientHello is not complete yet; feed more bytes.</summary>
    NeedMore,

    /// <summary>A well-formed ClientHello with a server_name (host_name); see <see cref="ClientHelloReader.ServerName"/>.</summary>
    ServerName,

    /// <summary>A well-formed ClientHello without a server_name extension.</summary>
    NoServerName,

    /// <summary>The first bytes are not a TLS handshake record (plain HTTP, SSLv2, SSH, garbage).</summary>
    NotTls,

    /// <summary>The ClientHello (or the bytes needed to read it) would exceed the reader's bound.</summary>
    TooLarge,

    /// <summary>It starts like TLS but breaks the record or ClientHello structure.</summary>
    Malformed,
}
