namespace Isotun.Protocol.Proxy;

/// <summary>The <c>client</c> byte of PP2_TYPE_SSL.</summary>
[Flags]
public enum ProxyClientFlags : byte
{
    None = 0,

    /// <summary>PP2_CLIENT_SSL: the client connected over SSL/TLS.</summary>
    Ssl = 0x01,

    /// <summary>PP2_CLIENT_CERT_CONN: the client presented a certificate over this connection.</summary>
    CertificateOnConnection = 0x02,

    /// <summary>PP2_CLIENT_CERT_SESS: the client presented a certificate at least once in this TLS session.</summary>
    CertificateInSession = 0x04,
}
