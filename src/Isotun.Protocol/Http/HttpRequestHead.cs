namespace Isotun.Protocol.Http;

/// <summary>A parsed HTTP/1.x request line plus headers.</summary>
public sealed class HttpRequestHead
{
    /// <summary>Request method, e.g. <c>POST</c> or <c>CONNECT</c>.</summary>
    public required string Method { get; init; }

    /// <summary>Request target as sent, e.g. <c>/CSCOSSLC/tunnel</c>.</summary>
    public required string Target { get; init; }

    /// <summary><c>HTTP/1.0</c> or <c>HTTP/1.1</c>.</summary>
    public required string Version { get; init; }

    /// <summary>Header fields.</summary>
    public required HttpHeaders Headers { get; init; }
}
